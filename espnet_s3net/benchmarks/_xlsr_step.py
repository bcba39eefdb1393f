"""The XLSR training step the step benchmarks time (``masked_step``, ``pathway_update``)."""

from typing import Optional, Tuple

import torch


def build_model(config: str, device: str):
    """The XLSR model (seeded) in training mode on ``device``."""
    from espnet_s3net.models.xlsr import XLSRModel, get_config

    torch.manual_seed(0)
    return XLSRModel(get_config(config)).to(device).train()


def fixed_batch(model, batch: int, seconds: float, device: str) -> Tuple[torch.Tensor, ...]:
    """wav (B, S), lengths (B,), span mask (B, T) and distractors (M, K), on ``device``."""
    from espnet_s3net.models.contrastive import sample_negatives
    from espnet_s3net.models.span_mask import span_mask

    cfg = model.cfg
    gen = torch.Generator().manual_seed(1)
    samples = int(16000 * seconds)
    frames = samples
    for _, kernel, stride in cfg.conv_layers:
        frames = (frames - kernel) // stride + 1
    mask = span_mask(batch, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks, generator=gen)
    negatives = sample_negatives(mask.nonzero()[:, 0], cfg.num_negatives, generator=gen)
    wav, lengths = torch.randn(batch, samples, generator=gen), torch.full((batch,), samples)
    return tuple(t.to(device) for t in (wav, lengths, mask, negatives))


class StepArm:
    """A model, its Adam optimizer and, for a masked arm, its masker (``policy``).

    A step: wav2vec 2.0 forward on a fixed batch (:func:`fixed_batch`), backward, Adam
    step, zero_grad; a masked step activates its language before and deactivates it after.
    """

    def __init__(self, model, masks, policy: Optional[str]):
        from espnet_s3net.masks.language_masker import LanguageMasker

        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        self.masker = None
        if policy is not None:
            self.masker = LanguageMasker(model, masks, missing="error", optim_state_policy=policy)
            self.masker.attach_optimizer(self.optimizer)

    def step(self, batch, seed: int, lang: Optional[str] = None) -> None:
        """One training step (``lang``'s sub-network when given)."""
        if lang is not None:
            self.masker.activate(lang)
        torch.manual_seed(seed)
        wav, lengths, mask, negatives = batch
        self.model.forward_pretrain(wav, lengths, mask, negatives).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if lang is not None:
            self.masker.deactivate()
