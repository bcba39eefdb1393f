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
- :func:`shuffle_data_dir`: a data dir's shuffled copy, as a normal data dir (wav.scp,
  text, utt2lang, ...) for everything downstream; ``espnet_s3net.bin.shuffle_phonemes``
  runs it with a fine-tuned phoneme CTC model.
"""

import logging
import os
import zlib
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch

from espnet_s3net.data.kaldi_dir import Skip, per_utt_files, read_kaldi_map, write_data_dir
from espnet_s3net.log import Progress

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


def shuffle_data_dir(data_dir: str, out_dir: str, emissions: Callable[[np.ndarray], torch.Tensor],
                     token_ids: Dict[str, int], blank: int, frame_shift: int, seed: int = 1,
                     fade_samples: int = 80, text: str = "text_phn") -> Tuple[int, List[Skip]]:
    """Write the shuffled-phoneme copy of the data dir ``data_dir`` into ``out_dir``.

    Every utterance's phoneme tokens (the ``text`` file, space-separated, looked up in
    ``token_ids``) are aligned to ``emissions(waveform)`` ((T, C) CTC log-probs), its
    segments shuffled (seed from ``seed`` and the utterance id: the same output whatever
    the order or the set) and written as 16 kHz FLAC under ``out_dir/data/``. The other
    per-utterance files are kept for the written utterances (same ids), ``wav.scp`` points
    to the new audio. An utterance that cannot be aligned or shuffled is skipped, named in
    ``out_dir/skipped.tsv`` and counted. Returns (utterances written, skips); no utterance
    written is an error. A rerun redoes the whole directory.
    """
    import soundfile as sf

    files = {name: read_kaldi_map(os.path.join(data_dir, name)) for name in per_utt_files(data_dir)}
    if text not in files:
        raise ValueError(f"{data_dir} has no {text}: the phoneme transcripts to align")
    wav, transcripts = files["wav.scp"], files[text]
    os.makedirs(os.path.join(out_dir, "data"), exist_ok=True)
    written, skips = {}, []
    progress = Progress(len(wav), f"shuffling the phonemes of {data_dir}")
    for utt, path in wav.items():
        unknown = [t for t in transcripts.get(utt, "").split() if t not in token_ids]
        if unknown:
            skips.append(Skip(utt, "token not in the model's token list", " ".join(sorted(set(unknown)))))
        else:
            try:
                audio = sf.read(path, dtype="float32")[0]
                tokens = [token_ids[t] for t in transcripts.get(utt, "").split()]
                segments = ctc_segments(emissions(audio), tokens, blank, len(audio), frame_shift)
                rng = np.random.default_rng([seed, zlib.crc32(utt.encode("utf-8"))])
                shuffled, _ = shuffle_segments(audio, segments, rng, fade_samples)
                written[utt] = os.path.abspath(os.path.join(out_dir, "data", f"{utt}.flac"))
                sf.write(written[utt], shuffled, 16000, format="FLAC", subtype="PCM_16")
            except AlignmentError as e:
                skips.append(Skip(utt, "alignment failed", str(e)))
        progress.update(1)
    if not written:
        raise ValueError(f"no utterance of {data_dir} could be shuffled ({len(skips)} skipped, e.g. "
                         f"{skips[0].item if skips else 'none'}: {skips[0].reason if skips else 'empty set'})")
    kept = {name: {u: v for u, v in mapping.items() if u in written} for name, mapping in files.items()}
    kept["wav.scp"] = written
    write_data_dir(out_dir, kept, skips)
    for skip in skips:
        logging.warning(f"phoneme shuffle: skipped {skip.item}: {skip.reason} ({skip.detail})")
    logging.info(f"{out_dir}: {len(written)} utterances shuffled, {len(skips)} skipped")
    return len(written), skips
