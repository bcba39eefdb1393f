"""Shuffled-phoneme speech (DistilXLSR): an utterance's phoneme segments in random order.

Shuffling the phoneme segments of one language's speech keeps its acoustics (speakers,
phones, recording) and removes most of its language-specific sequence information; a
student distilled on it learns the teacher's cross-lingual representation rather than
that language.

- :func:`ctc_segments`: phoneme segment boundaries from a CTC forced alignment of the
  utterance's phoneme tokens to a phoneme CTC model's emissions (torchaudio's
  ``forced_align``, the maintained CTC aligner of the pinned stack). Every token gets one
  segment; a boundary lies half-way between two consecutive tokens' aligned frame spans,
  so the segments cover the utterance (blank frames split between their neighbours).
- :func:`shuffle_segments`: the segments concatenated in a random order, each faded in
  and out over ``fade`` samples (raised cosine) so the junctions do not click; the
  duration is kept and the output is the multiset of the faded segments.
"""

from typing import List, Sequence, Tuple

import numpy as np
import torch

Segment = Tuple[int, int]  # [start, end) in samples


class AlignmentError(ValueError):
    """An utterance's tokens cannot be aligned to its emissions (the caller skips it, named)."""


def ctc_segments(log_probs: torch.Tensor, tokens: Sequence[int], blank: int, samples: int,
                 frame_shift: int) -> List[Segment]:
    """One ``[start, end)`` sample range per token of ``tokens``, covering ``[0, samples)``.

    Args:
        log_probs: (T, C) CTC log-probabilities of the utterance (T frames).
        tokens: the phoneme token ids (no blank), in order.
        blank: the blank id.
        samples: the utterance's length in samples.
        frame_shift: samples per frame (320 for wav2vec 2.0 at 16 kHz): frame t starts at
            sample ``t·frame_shift``.
    """
    tokens = list(tokens)
    if not tokens:
        raise AlignmentError("no tokens to align")
    if blank in tokens:
        raise AlignmentError(f"the tokens contain the blank id {blank}")
    frames = log_probs.shape[0]
    needed = len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))
    if frames < needed:
        raise AlignmentError(f"{frames} frames cannot hold {len(tokens)} tokens ({needed} frames needed with "
                             "repeats)")
    from torchaudio.functional import forced_align, merge_tokens

    labels, scores = forced_align(log_probs.detach().float().cpu()[None], torch.tensor([tokens], dtype=torch.int32),
                                  blank=blank)
    spans = merge_tokens(labels[0], scores[0].exp(), blank=blank)
    cuts = [min((a.end + b.start) * frame_shift // 2, samples) for a, b in zip(spans, spans[1:])]
    bounds = [0, *cuts, samples]
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise AlignmentError(f"the aligned segments do not fit {samples} samples (frames {frames}, shift "
                             f"{frame_shift}): emissions of another length than the audio?")
    return list(zip(bounds, bounds[1:]))


def fade(segment: np.ndarray, length: int) -> np.ndarray:
    """``segment`` (S,) faded in over its first and out over its last ``min(length, S//2)``
    samples (raised cosine); a new array."""
    out = segment.astype(np.float32, copy=True)
    n = min(length, len(out) // 2)
    if n:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def shuffle_segments(wav: np.ndarray, segments: Sequence[Segment], rng: np.random.Generator,
                     fade_samples: int = 80) -> Tuple[np.ndarray, List[int]]:
    """(shuffled (S,) float32, order): ``wav``'s ``segments`` (contiguous, covering it)
    concatenated in the random ``order``, each through :func:`fade` (default 80 samples,
    5 ms at 16 kHz). Fewer than two segments cannot be shuffled: AlignmentError."""
    if len(segments) < 2:
        raise AlignmentError(f"{len(segments)} segment(s): nothing to shuffle")
    starts, ends = [s for s, _ in segments], [e for _, e in segments]
    if starts[0] != 0 or ends[-1] != len(wav) or starts[1:] != ends[:-1]:
        raise ValueError(f"segments must be contiguous and cover the {len(wav)} samples")
    order = [int(i) for i in rng.permutation(len(segments))]
    return np.concatenate([fade(wav[starts[i]:ends[i]], fade_samples) for i in order]), order
