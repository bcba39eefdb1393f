"""Batches outside ESPnet's data loaders (language sampler, decoding, extraction): cut by
padded length, and read as padded waveforms."""

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from espnet.nets.pytorch_backend.nets_utils import pad_list


def length_bins(utts: Sequence[str], utt2len: Dict[str, int], batch_bins: int) -> List[List[str]]:
    """Cut ``utts`` (in the given order) into consecutive batches of at most ``batch_bins``
    padded samples (longest length × count; an utterance longer than that alone)."""
    batches: List[List[str]] = []
    current: List[str] = []
    current_max = 0
    for utt in utts:
        longest = max(current_max, utt2len[utt])
        if current and longest * (len(current) + 1) > batch_bins:
            batches.append(current)
            current, longest = [], utt2len[utt]
        current.append(utt)
        current_max = longest
    if current:
        batches.append(current)
    return batches


def pad_waveforms(audio: Sequence[np.ndarray]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Waveforms (S_i,) float32 -> zero-padded (B, max S_i) and lengths (B,)."""
    return pad_list([torch.from_numpy(a) for a in audio], 0.0), torch.tensor([len(a) for a in audio])


def read_waveforms(paths: Sequence[str]) -> List[np.ndarray]:
    """The float32 samples of each audio file."""
    import soundfile as sf

    return [sf.read(path, dtype="float32")[0] for path in paths]
