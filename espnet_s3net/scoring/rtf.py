"""Decoding real-time factor of several fine-tuned models measured in one run (the DistilXLSR
experiment's "student vs teacher" speed), and the file that carries it to RESULTS.md.

Every model is loaded once; the same test utterances (read once, batched once, the same
batches for every model) are decoded by the recipe's decoder (CTC greedy,
:class:`espnet_s3net.asr.inference.GreedyCTCDecoder`, as stage 10 decodes) in rounds, every
model once per round in an order reversed every round, after a warm-up round
(:func:`espnet_s3net.benchmarks._timing.alternating_rounds`, the benchmarks' machinery). So
load, drift and caches fall on every model alike. A model's RTF is its median over rounds of
decoding seconds / audio seconds; its ratio to the control is the median over rounds of the
per-round ratio (a round's models ran back to back). Stage 10's own ``decode_<set>/rtf`` files
come from separate jobs, possibly at the same time as others, so they are not compared.

File (:func:`write_rtf_file` / :func:`read_rtf_file`): a header ``# ...`` line with the run's
settings, then one line per model: ``name rtf ratio_to_control``.
"""

import os
import statistics
from typing import Dict, List, Mapping, Sequence, Tuple


def _test_batches(data_root: str, test_sets: Sequence[str], max_utts: int, batch_bins: int):
    """[(language, [batch of waveforms, ...])] per test set, and the audio seconds in all."""
    from espnet_s3net.asr.inference import set_language
    from espnet_s3net.data.batches import length_bins, read_waveforms
    from espnet_s3net.data.kaldi_dir import read_kaldi_map

    sets, samples = [], 0
    for name in test_sets:
        data_dir = os.path.join(data_root, name)
        wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
        lengths = {utt: int(n) for utt, n in read_kaldi_map(os.path.join(data_dir, "utt2num_samples")).items()}
        utts = sorted(wav)[:max_utts] if max_utts > 0 else sorted(wav)
        if not utts:
            raise ValueError(f"{data_dir} has no utterances to decode")
        batches = length_bins(sorted(utts, key=lambda u: (-lengths[u], u)), lengths, batch_bins)
        sets.append((set_language(data_dir), [read_waveforms([wav[u] for u in b]) for b in batches]))
        samples += sum(lengths[u] for u in utts)
    return sets, samples / 16000


def compare_rtf(models: Mapping[str, Tuple[str, str]], control: str, data_root: str, test_sets: Sequence[str],
                rounds: int = 3, max_utts: int = 0, batch_bins: int = 1_600_000, device: str = "cpu",
                threads: int = 1) -> Dict[str, dict]:
    """Decode the same utterances with every model of ``models`` (name -> (asr config, model
    file)) in ``rounds`` alternating rounds (module docstring); ``max_utts`` > 0: the first
    that many utterances (by id) of each test set. Returns name -> ``{"rtf", "ratio",
    "seconds": [...per round], "audio_s"}`` (ratio: to ``control``)."""
    import torch

    from espnet_s3net.asr.inference import GreedyCTCDecoder, use_language
    from espnet_s3net.benchmarks._timing import alternating_rounds
    from espnet_s3net.tasks.asr import S3NetASRTask

    if control not in models:
        raise ValueError(f"the control {control} is not one of the models ({', '.join(models)})")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    torch.set_num_threads(threads)
    sets, audio_s = _test_batches(data_root, test_sets, max_utts, batch_bins)
    decoders = {}
    for name, (config, model_file) in models.items():
        model, _ = S3NetASRTask.build_model_from_file(config, model_file, device)
        decoders[name] = GreedyCTCDecoder(model, device)

    def decode_all(name: str) -> None:
        decoder = decoders[name]
        for lang, batches in sets:
            use_language(decoder.model, lang)
            for audio in batches:
                decoder(audio)

    calls = {name: (lambda r, name=name: decode_all(name)) for name in models}
    seconds = alternating_rounds(calls, rounds, device)
    out = {}
    for name in models:
        ratios = [s / c for s, c in zip(seconds[name], seconds[control])]
        out[name] = {"rtf": statistics.median(seconds[name]) / audio_s, "ratio": statistics.median(ratios),
                     "seconds": seconds[name], "audio_s": audio_s}
    return out


def write_rtf_file(path: str, results: Mapping[str, dict], header: str) -> None:
    """``results`` of :func:`compare_rtf` as ``name rtf ratio`` lines after ``# header``."""
    lines = [f"# {header}"] + [f"{name} {r['rtf']:.6f} {r['ratio']:.4f}" for name, r in results.items()]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def read_rtf_file(path: str) -> Tuple[str, Dict[str, Tuple[float, float]]]:
    """(header, name -> (rtf, ratio to the control)) from a file of :func:`write_rtf_file`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"RTF file {path} does not exist")
    header, rows = "", {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("#"):
                header = header or line[1:].strip()
                continue
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{lineno}: expected 'NAME RTF RATIO', got {line.strip()!r}")
            try:
                rows[fields[0]] = (float(fields[1]), float(fields[2]))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: RTF and ratio must be numbers, got {line.strip()!r}") from None
    return header, rows


def format_header(test_sets: Sequence[str], rounds: int, max_utts: int, audio_s: float, device: str,
                  threads: int, control: str) -> str:
    """The settings line of an RTF file: what was decoded, how often, where."""
    utts = f"the first {max_utts} utterances of each of" if max_utts > 0 else "every utterance of"
    where = f"{threads} CPU thread(s)" if device == "cpu" else device
    return (f"CTC greedy decoding of {utts} {' '.join(test_sets)} ({audio_s:.1f} s of audio) by every model in "
            f"{rounds} alternating round(s) after a warm-up, in one process on {where}; RTF: median over rounds; "
            f"ratio: median of the per-round ratio to {control}")


def names_in_order(models: Sequence[str]) -> List[str]:
    """``models`` without repeats, in order (a model given twice is an error)."""
    seen: List[str] = []
    for name in models:
        if name in seen:
            raise ValueError(f"model {name} is given twice")
        seen.append(name)
    return seen
