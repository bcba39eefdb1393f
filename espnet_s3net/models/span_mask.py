"""wav2vec 2.0 span masking over frames (pre-training and fine-tuning augmentation)."""

from typing import Optional

import torch


def span_mask(
    batch_size: int,
    num_frames: int,
    mask_prob: float,
    mask_length: int,
    min_masks: int = 0,
    lengths: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Random spans of ``mask_length`` frames, like wav2vec 2.0.

    Each utterance of ``L`` valid frames gets ``int(mask_prob * L / mask_length + u)``
    spans (``u ~ U[0, 1)``, at least ``min_masks``), their starts drawn without
    replacement from ``[0, L - mask_length]``; spans may overlap, so about
    ``mask_prob``·(1 - overlap) of the frames end up masked. Padded frames are never
    masked.

    Args:
        batch_size, num_frames: shape of the result.
        mask_prob: fraction of frames to mask before span overlap (see above).
        mask_length: span length in frames.
        min_masks: fewest spans per utterance.
        lengths: (B,) valid frames per utterance; ``None`` = all valid.
        generator: torch random generator (CPU) for reproducible masks.
    Returns:
        BoolTensor (B, T), True = masked.
    """
    if lengths is None:
        lengths = torch.full((batch_size,), num_frames, dtype=torch.long)
    lengths = lengths.detach().to("cpu", torch.long)
    mask = torch.zeros(batch_size, num_frames, dtype=torch.bool)
    for b in range(batch_size):
        length = int(lengths[b])
        span = min(mask_length, length)
        if span <= 0:
            continue
        draw = float(torch.rand((), generator=generator))
        n_spans = max(min_masks, int(mask_prob * length / mask_length + draw))
        n_starts = length - span + 1
        n_spans = min(n_spans, n_starts)
        if n_spans == 0:
            continue
        starts = torch.randperm(n_starts, generator=generator)[:n_spans]
        frames = (starts[:, None] + torch.arange(span)[None, :]).reshape(-1)
        mask[b, frames] = True
    return mask.to(device) if device is not None else mask
