"""Gumbel-softmax product quantizer of wav2vec 2.0."""

from typing import Tuple

import torch
import torch.nn.functional as F


class GumbelVectorQuantizer(torch.nn.Module):
    """G groups × V entries; one entry per group is picked and the picks concatenated.

    Training picks with straight-through Gumbel-softmax at the temperature
    ``max(max_temp · decay^n, min_temp)`` after n optimizer updates (``num_updates``,
    a buffer saved in the state dict; forwards never advance it, the trainer calls
    :meth:`count_update` once per optimizer step taken); evaluation picks the argmax.

    Args:
        input_dim: C of the input features.
        num_groups: G.
        num_vars: V entries per group.
        codevector_dim: output dim (divisible by G).
        temperature: (max_temp, min_temp, decay).
    """

    def __init__(self, input_dim: int, num_groups: int, num_vars: int, codevector_dim: int,
                 temperature: Tuple[float, float, float] = (2.0, 0.5, 0.999995)):
        super().__init__()
        if codevector_dim % num_groups:
            raise ValueError(f"codevector_dim {codevector_dim} is not divisible by {num_groups} groups")
        self.num_groups = num_groups
        self.num_vars = num_vars
        self.max_temp, self.min_temp, self.decay = temperature
        self.weight_proj = torch.nn.Linear(input_dim, num_groups * num_vars)
        self.codevectors = torch.nn.Parameter(
            torch.empty(1, num_groups * num_vars, codevector_dim // num_groups).uniform_()
        )
        torch.nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        torch.nn.init.zeros_(self.weight_proj.bias)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def temperature(self) -> float:
        return max(self.max_temp * self.decay ** int(self.num_updates), self.min_temp)

    def count_update(self) -> None:
        """Advance the temperature schedule by one optimizer update."""
        self.num_updates += 1

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantize frames.

        Args:
            x: (N, C) features of N frames.
        Returns:
            (N, codevector_dim) quantized vectors, code perplexity (hard picks) and
            prob perplexity (softmax averaged over frames), each summed over groups.
        """
        n = x.shape[0]
        logits = self.weight_proj(x).view(n * self.num_groups, self.num_vars)
        hard = F.one_hot(logits.argmax(-1), self.num_vars).to(logits.dtype)
        hard_probs = hard.view(n, self.num_groups, -1).float().mean(0)
        code_ppl = torch.exp(-(hard_probs * torch.log(hard_probs + 1e-7)).sum(-1)).sum()
        avg_probs = torch.softmax(logits.view(n, self.num_groups, -1).float(), -1).mean(0)
        prob_ppl = torch.exp(-(avg_probs * torch.log(avg_probs + 1e-7)).sum(-1)).sum()
        if self.training:
            picks = F.gumbel_softmax(logits.float(), tau=self.temperature, hard=True).type_as(x)
        else:
            picks = hard
        # one matmul per group: (G, N, V) @ (G, V, D/G) -> (N, G·D/G); the same sums as
        # broadcasting picks against all G·V codevectors, without the (N, G·V, D/G) product
        codebooks = self.codevectors.view(self.num_groups, self.num_vars, -1)
        vectors = torch.bmm(picks.view(n, self.num_groups, self.num_vars).transpose(0, 1), codebooks)
        return vectors.transpose(0, 1).reshape(n, -1), code_ppl, prob_ppl
