"""Distill-L2S: the auxiliary loss that distils a text model into a CTC speech model.

Distill-L2S (Choi & Park, Interspeech 2022) pulls the hidden states of a speech model that
is fine-tuned with CTC towards the hidden states of a multilingual text model (InfoXLM in
the paper) for the utterance's transcript. The two sequences differ in length and
modality; the loss bridges them in three steps:

1. **Shrink** (:func:`shrink_ctc_frames`): the speech frames are cut into runs of
   consecutive frames with the same CTC argmax; each run becomes the mean of its hidden
   states and blank runs are dropped, so an utterance of ``T`` frames becomes one vector
   per greedy-CTC output symbol (``T'`` of them).
2. **Align** (:func:`interpolate_to`): the ``T'`` shrunk vectors are stretched or squeezed
   to the teacher's ``N`` token positions by nearest-neighbour interpolation.
3. **Project and match** (:class:`L2SDistillLoss`): a learnable linear layer maps the
   speech dimension ``D`` to the teacher dimension ``E``; the loss is ``λ`` times the mean
   squared error against the teacher states over the valid tokens.

Shapes: speech hidden states ``(B, T, D)`` with frame lengths ``(B,)``, CTC logits (or
log-probabilities) ``(B, T, V)``, teacher states ``(B, N, E)`` with token lengths ``(B,)``.
Lengths are counts of valid positions; positions beyond them are padding and never read.
The teacher states are targets only: the loss detaches them.
"""

from typing import Optional, Tuple

import torch


def shrink_ctc_frames(
    hidden: torch.Tensor, lengths: torch.Tensor, ctc_logits: torch.Tensor, blank: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Merge runs of frames with the same CTC argmax (mean of the run) and drop blank runs.

    Runs are taken over the frame sequence as CTC decodes it, so ``a a ∅ a`` gives two
    vectors (mean of frames 0-1, frame 3). Frames at or beyond ``lengths[b]`` are ignored.

    Args:
        hidden: speech hidden states ``(B, T, D)``.
        lengths: valid frames per utterance ``(B,)``.
        ctc_logits: CTC logits or log-probabilities ``(B, T, V)`` of the same frames.
        blank: index of the CTC blank symbol.

    Returns:
        ``(shrunk (B, T', D), shrunk_lengths (B,))``: one vector per non-blank run, zeros
        beyond ``shrunk_lengths[b]``, ``T' = max(shrunk_lengths)``; an utterance whose
        argmax is blank on every valid frame has length 0.
    """
    batch, frames, dim = hidden.shape
    ids = ctc_logits.detach().argmax(dim=-1)  # (B, T)
    valid = torch.arange(frames, device=hidden.device)[None, :] < lengths.to(hidden.device)[:, None]
    run_start = torch.ones_like(valid)
    run_start[:, 1:] = ids[:, 1:] != ids[:, :-1]
    keep = valid & (ids != blank)
    # index of each kept frame's run among its utterance's non-blank runs
    segment = torch.cumsum(run_start & keep, dim=1) - 1
    shrunk_lengths = (run_start & keep).sum(dim=1)
    max_len = int(shrunk_lengths.max()) if batch else 0  # the one value read back from the device

    rows = batch * max_len
    batch_index = torch.arange(batch, device=hidden.device)[:, None]
    # each frame's row of the flattened (B * T') output; frames not kept go to a spare row
    # (no boolean indexing: its size would be read back from the device)
    flat = torch.where(keep, batch_index * max_len + segment, rows).reshape(-1)  # (B * T,)
    sums = hidden.new_zeros(rows + 1, dim).index_add(0, flat, hidden.reshape(-1, dim))[:rows]
    counts = hidden.new_zeros(rows + 1).index_add(0, flat, hidden.new_ones(flat.numel()))[:rows]
    shrunk = sums / counts.clamp(min=1)[:, None]
    return shrunk.view(batch, max_len, dim), shrunk_lengths


def interpolate_to(seq: torch.Tensor, lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour resampling of each utterance to its target length.

    Target position ``j`` of utterance ``b`` takes source vector
    ``floor(j * lengths[b] / target_lengths[b])`` (the index rule of
    ``torch.nn.functional.interpolate(mode="nearest")``, computed in integers), for a
    longer or a shorter target alike.

    Args:
        seq: source vectors ``(B, T', D)``; only the first ``lengths[b]`` are read.
        lengths: valid source vectors per utterance ``(B,)``.
        target_lengths: positions to produce per utterance ``(B,)``.

    Returns:
        ``(B, max(target_lengths), D)``; zeros beyond ``target_lengths[b]`` and for the
        whole utterance where ``lengths[b] == 0``.
    """
    batch, _, dim = seq.shape
    max_target = int(target_lengths.max()) if batch else 0  # read where the lengths are (the CPU for a teacher's)
    lengths = lengths.to(seq.device)
    target_lengths = target_lengths.to(seq.device)
    if seq.shape[1] == 0:  # every source is empty
        return seq.new_zeros(batch, max_target, dim)
    position = torch.arange(max_target, device=seq.device)[None, :]  # (1, N)
    source = (position * lengths[:, None]) // target_lengths.clamp(min=1)[:, None]
    source = torch.minimum(source, (lengths[:, None] - 1).clamp(min=0))  # (B, N)
    filled = (position < target_lengths[:, None]) & (lengths[:, None] > 0)
    gathered = torch.gather(seq, 1, source[:, :, None].expand(batch, max_target, dim))
    return torch.where(filled[:, :, None], gathered, 0.0)


class L2SDistillLoss(torch.nn.Module):
    """``λ`` · MSE between projected, shrunk and aligned speech states and teacher states.

    The projection is a learnable ``Linear(input_size, projection_size, bias=False)``;
    ``projection_size`` must equal the teacher's hidden size ``E``. The MSE is the squared
    error summed over valid tokens and the ``E`` dimensions, divided by
    ``E × (number of valid tokens)``: a per-element mean in which every valid token weighs
    the same. Valid tokens are those below ``teacher_lengths[b]`` of utterances whose shrunk
    sequence is not empty; with none in the batch the loss is 0 (no NaN).

    Args:
        input_size: speech hidden size ``D``.
        projection_size: teacher hidden size ``E``.
        lambda_: weight ``λ ≥ 0`` of the auxiliary loss.
        blank: index of the CTC blank symbol.
    """

    def __init__(self, input_size: int, projection_size: int, lambda_: float = 1.0, blank: int = 0):
        super().__init__()
        if not lambda_ >= 0:
            raise ValueError(f"Distill-L2S: lambda_ must be >= 0, got {lambda_}")
        self.lambda_ = float(lambda_)
        self.blank = blank
        self.projection = torch.nn.Linear(input_size, projection_size, bias=False)

    def unused_parameters_reason(self) -> Optional[str]:
        """With λ = 0 the loss is not computed: the projection gets no gradient (DDP)."""
        return "lambda 0: the Distill-L2S projection is not used" if self.lambda_ == 0 else None

    def forward(
        self,
        hidden: torch.Tensor,
        hidden_lengths: torch.Tensor,
        ctc_logits: torch.Tensor,
        teacher: torch.Tensor,
        teacher_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Weighted loss (scalar) from speech ``(B, T, D)`` / ``(B,)``, CTC logits
        ``(B, T, V)`` and teacher states ``(B, N, E)`` / token lengths ``(B,)``."""
        if hidden.shape[-1] != self.projection.in_features:
            raise ValueError(
                f"Distill-L2S: speech hidden size {hidden.shape[-1]} != input_size {self.projection.in_features}"
            )
        if teacher.shape[-1] != self.projection.out_features:
            raise ValueError(
                f"Distill-L2S: teacher hidden size {teacher.shape[-1]} != projection_size "
                f"{self.projection.out_features}"
            )
        shrunk, shrunk_lengths = shrink_ctc_frames(hidden, hidden_lengths, ctc_logits, self.blank)
        aligned = interpolate_to(shrunk, shrunk_lengths, teacher_lengths)  # (B, N', D)
        teacher_lengths = teacher_lengths.to(hidden.device)
        projected = self.projection(aligned)  # (B, N', E)
        tokens = projected.shape[1]
        mask = torch.arange(tokens, device=hidden.device)[None, :] < teacher_lengths[:, None]
        mask = (mask & (shrunk_lengths > 0)[:, None])[:, :, None]  # (B, N', 1)
        # padded teacher values (even NaN) are replaced before the difference, not multiplied away
        target = torch.where(mask, teacher.detach()[:, :tokens].to(projected.dtype), 0.0)
        squared = torch.where(mask, projected - target, 0.0).pow(2)
        denominator = mask.sum() * projected.shape[-1]
        return self.lambda_ * squared.sum() / denominator.clamp(min=1)
