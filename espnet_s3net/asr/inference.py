"""Decoding with language sub-networks.

- :func:`use_language`: put a language's sub-network on every masker of a model (the
  Python API's way to choose the language, e.g. for ESPnet's ``Speech2Text``).
- :class:`CTCEmissions`: one utterance's CTC log-probabilities (forced alignment).
- :func:`decode_sets`: batched CTC greedy decoding of several single-language test sets
  with one model load (recipe stage 10): each set's language comes from its ``utt2lang``,
  written at data preparation. ESPnet's ``espnet2.bin.asr_inference`` (beam search, one
  utterance at a time) gets the language as the data input ``utt2lang,lang,text``.
"""

import logging
import os
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

from espnet_s3net.asr.sparse_kernels import drop_sparse_kernels, use_sparse_kernels
from espnet_s3net.data.batches import length_bins, pad_waveforms, read_waveforms
from espnet_s3net.data.kaldi_dir import read_kaldi_map, write_kaldi_map
from espnet_s3net.log import Progress
from espnet_s3net.train.language_data import language_followers


def use_language(model: torch.nn.Module, lang: str, missing: str = "error", sparse_kernels: bool = False) -> bool:
    """Decode with ``lang``'s sub-network (and language modules) in ``model`` (``missing``:
    ``"error"``, or ``"dense"`` for a logged dense fallback when ``lang`` has no mask;
    ``sparse_kernels``: with 2:4 semi-structured sparse weights where the model and device
    allow it, else a logged dense masked fallback, :func:`use_sparse_kernels`; without it,
    sparse weights built for an earlier language are dropped). Returns whether the model has
    anything language-specific."""
    followers = language_followers(model)
    for follower in followers:
        if hasattr(follower, "missing"):
            follower.missing = missing
        follower.activate(lang)
    if sparse_kernels:
        use_sparse_kernels(model, lang)
    else:
        drop_sparse_kernels(model)
    return bool(followers)


def ctc_greedy(token_ids: torch.Tensor, length: int, blank: int = 0) -> List[int]:
    """Collapse repeats and drop blanks of one argmax path (T,) -> token id list."""
    out, previous = [], None
    for token in token_ids[:length].tolist():
        if token != previous and token != blank:
            out.append(token)
        previous = token
    return out


class GreedyCTCDecoder:
    """Batched CTC greedy decoding with an ESPnet ASR model: a list of (S,) float32
    waveforms at 16 kHz -> a list of token lists (computed in the model's dtype)."""

    def __init__(self, model, device: str):
        self.model, self.device = model.eval(), device
        self.dtype = next(model.parameters()).dtype

    @torch.no_grad()
    def __call__(self, audio: Sequence[np.ndarray]) -> List[List[str]]:
        speech, lens = pad_waveforms(audio)
        enc, enc_lens = self.model.encode(speech.to(self.device, self.dtype), lens.to(self.device))
        best = self.model.ctc.argmax(enc).cpu()
        return [[self.model.token_list[t] for t in ctc_greedy(best[i], int(enc_lens[i]))]
                for i in range(len(audio))]


class CTCEmissions:
    """CTC log-probabilities of one utterance with an ESPnet ASR model: (S,) float32
    waveform at 16 kHz -> (T, C) float32 on CPU (e.g. for forced alignment)."""

    def __init__(self, model, device: str):
        self.model, self.device = model.eval(), device
        self.dtype = next(model.parameters()).dtype

    @torch.no_grad()
    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        speech, lens = pad_waveforms([audio])
        enc, enc_lens = self.model.encode(speech.to(self.device, self.dtype), lens.to(self.device))
        return self.model.ctc.log_softmax(enc)[0, :int(enc_lens[0])].float().cpu()


def decode_set(decode: Callable, data_dir: str, out_dir: str, batch_bins: int) -> float:
    """Decode the data dir ``data_dir`` into ``out_dir/text`` with ``decode`` (waveforms ->
    token lists), logging progress with an ETA; writes and returns the real-time factor
    (decoding seconds / audio seconds) in ``out_dir/rtf``."""
    wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    lengths = {utt: int(n) for utt, n in read_kaldi_map(os.path.join(data_dir, "utt2num_samples")).items()}
    batches = length_bins(sorted(wav, key=lambda u: -lengths[u]), lengths, batch_bins)
    progress = Progress(len(wav), f"decoding {data_dir}")
    hyps, decode_s = {}, 0.0
    for utts in batches:
        audio = read_waveforms([wav[u] for u in utts])
        start = time.perf_counter()
        tokens = decode(audio)
        decode_s += time.perf_counter() - start
        hyps.update((utt, " ".join(hyp)) for utt, hyp in zip(utts, tokens))
        progress.update(len(utts))
    os.makedirs(out_dir, exist_ok=True)
    write_kaldi_map(os.path.join(out_dir, "text"), hyps)
    rtf = decode_s / (sum(lengths.values()) / 16000)
    with open(os.path.join(out_dir, "rtf"), "w") as f:
        f.write(f"{rtf:.6f}\n")
    return rtf


def set_language(data_dir: str) -> str:
    """The one language of a test set (its ``utt2lang``); several are an error."""
    langs = set(read_kaldi_map(os.path.join(data_dir, "utt2lang")).values())
    if len(langs) != 1:
        raise ValueError(f"{data_dir} holds languages {sorted(langs)}; decode one language per set")
    return langs.pop()


def decode_sets(asr_train_config: str, asr_model_file: str, data_root: str, test_sets: Sequence[str],
                output_root: str, batch_bins: int, device: str = "cpu", missing: str = "error",
                dtype: str = "float32", sparse_kernels: bool = False) -> Dict[str, float]:
    """CTC greedy decoding of ``<data_root>/<set>`` for every test set, each with its
    language's sub-network, into ``<output_root>/decode_<set>/{text,rtf}``; returns the RTFs.
    ``dtype``: the model's (``float32``, ``float16``, ``bfloat16``); ``sparse_kernels``: see
    :func:`use_language`."""
    from espnet_s3net.tasks.asr import S3NetASRTask

    model, _ = S3NetASRTask.build_model_from_file(asr_train_config, asr_model_file, device)
    decode = GreedyCTCDecoder(model.to(dtype=getattr(torch, dtype)), device)
    rtfs = {}
    for name in test_sets:
        data_dir = os.path.join(data_root, name)
        lang = set_language(data_dir)
        masked = use_language(model, lang, missing, sparse_kernels)
        rtfs[name] = decode_set(decode, data_dir, os.path.join(output_root, f"decode_{name}"), batch_bins)
        logging.info(f"decoded {name} ({lang}{', sub-network' if masked else ', dense model'}) by CTC greedy: "
                     f"RTF {rtfs[name]:.4f}")
    return rtfs
