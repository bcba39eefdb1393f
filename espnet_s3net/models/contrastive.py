"""Distractor sampling and the wav2vec 2.0 contrastive loss."""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def sample_negatives(
    frame_utt: torch.Tensor, num_negatives: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Distractor indices among the masked frames of the same utterance.

    Args:
        frame_utt: (M,) utterance index of each masked frame, sorted (frames of one
            utterance are contiguous, as in ``features[mask]``).
        num_negatives: K.
    Returns:
        LongTensor (M, K) of indices into the M masked frames, never the frame itself
        (unless its utterance has a single masked frame).
    """
    m = frame_utt.numel()
    device = frame_utt.device
    counts = torch.bincount(frame_utt)
    starts = torch.cumsum(counts, 0) - counts
    offset = starts[frame_utt]                      # first masked frame of the utterance
    local = torch.arange(m, device=device) - offset  # position inside the utterance
    others = (counts[frame_utt] - 1).clamp(min=1)    # candidates besides the frame itself
    draw = torch.rand(m, num_negatives, generator=generator).to(device)
    pick = (draw * others[:, None]).long().clamp(max=others[:, None] - 1)
    pick = pick + (pick >= local[:, None]).long() * (counts[frame_utt] > 1).long()[:, None]
    return offset[:, None] + pick


def contrastive_logits(
    context: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cosine-similarity logits, positive first.

    Args:
        context: (M, F) projected transformer outputs at masked frames.
        targets: (M, F) projected quantized targets of the same frames.
        negatives: (M, K) distractor indices into ``targets``.
        temperature: κ.
    Returns:
        (M, 1 + K) logits; a distractor equal to the positive gets -inf.
    """
    # cosine similarity as a batched dot product of unit vectors: each target is normalised
    # once (M, F) instead of once per candidate slot (M, 1+K, F); in float32 under autocast too
    with torch.autocast(device_type=context.device.type, enabled=False):
        units = F.normalize(targets.float(), dim=-1)
        candidates = torch.cat([units[:, None, :], units[negatives]], dim=1)   # (M, 1+K, F)
        query = F.normalize(context.float(), dim=-1)[:, :, None]                # (M, F, 1)
        logits = torch.bmm(candidates, query).squeeze(-1) / temperature
    same = (targets[negatives] == targets[:, None, :]).all(-1)
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)


def contrastive_loss(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy with the positive at index 0, and the accuracy."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(-1) == 0).float().mean()
    return loss, accuracy
