"""Audio formatting (recipe stage 3): decode, downmix, resample to 16 kHz, write FLAC.

Work is split in three steps so that the recipe's job runner can run the middle one
in parallel with a log per job:

- :func:`split_scp`: ``wav.scp`` of a data dir -> ``<out>/split<N>/wav.<n>.scp``;
- :func:`format_part`: one part -> FLAC files under ``<out>/data/`` plus part files
  ``formatted.<n>.scp``/``utt2num_samples.<n>``/``skipped.<n>.tsv`` (rerunning a part redoes it);
- :func:`merge_parts`: the dump dir ``<out>`` with every per-utterance file of the source
  dir restricted to the kept utterances, ``utt2num_samples`` and ``skipped.tsv``.
"""

import csv
import logging
import os
from typing import Dict, List, Tuple

import numpy as np

from espnet_s3net.data.kaldi_dir import (
    Skip,
    append_skipped,
    per_utt_files,
    read_kaldi_map,
    read_skip_rows,
    validate_data_dir,
    write_data_dir,
    write_kaldi_map,
)
from espnet_s3net.log import progress

# what a skipped clip lacks, in our words; the library's message goes to the detail
NOT_FOUND = "file not found"
EMPTY_FILE = "empty file"
UNDECODABLE = "cannot decode audio (corrupt or unsupported format)"
EMPTY_AUDIO = "empty audio"
TOO_SHORT = "shorter than the minimum duration"
TOO_LONG = "longer than the maximum duration"


def split_scp(data_dir: str, out_dir: str, nj: int) -> List[str]:
    """Split ``data_dir/wav.scp`` into ``nj`` contiguous parts (by sorted utt id)."""
    wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    utts = sorted(wav, key=lambda u: u.encode())
    nj = max(1, min(nj, len(utts)))
    split_dir = os.path.join(out_dir, f"split{nj}")
    os.makedirs(split_dir, exist_ok=True)
    paths = []
    for n, chunk in enumerate(np.array_split(np.array(utts, dtype=object), nj), 1):
        path = os.path.join(split_dir, f"wav.{n}.scp")
        write_kaldi_map(path, {u: wav[u] for u in chunk})
        paths.append(path)
    return paths


def load_audio(path: str, fs: int) -> np.ndarray:
    """Mono float32 waveform of ``path`` at ``fs`` Hz (raises on undecodable audio)."""
    import soundfile as sf
    import soxr

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != fs:
        mono = soxr.resample(mono, rate, fs, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def format_one(path: str, out_path: str, fs: int, min_s: float, max_s: float) -> Tuple[int, str, str]:
    """Format one clip; return ``(samples, "", "")``, or ``(0, reason, detail)`` when it is skipped."""
    import soundfile as sf

    if not os.path.exists(path):
        return 0, NOT_FOUND, path
    if os.path.getsize(path) == 0:
        return 0, EMPTY_FILE, path
    try:
        audio = load_audio(path, fs)
    except Exception as exc:  # libsndfile reports corrupt files with several error types
        return 0, UNDECODABLE, f"{type(exc).__name__}: {exc}"
    if not len(audio):
        return 0, EMPTY_AUDIO, path
    seconds = len(audio) / fs
    if seconds < min_s:
        return 0, TOO_SHORT, f"{seconds:.2f} s < {min_s} s"
    if max_s > 0 and seconds > max_s:
        return 0, TOO_LONG, f"{seconds:.2f} s > {max_s} s"
    tmp = out_path + ".tmp.flac"
    sf.write(tmp, audio, fs, format="FLAC", subtype="PCM_16")
    os.replace(tmp, out_path)
    return len(audio), "", ""


def format_part(wav_scp: str, out_dir: str, fs: int = 16000, min_s: float = 0.0, max_s: float = 0.0,
                progress_interval_s: float = 10.0) -> Dict[str, int]:
    """Format the clips of one ``wav.<n>.scp`` part; write its part files next to it.

    Logs ``formatting <wav_scp>: done/total (percent), elapsed, ETA`` at most every
    ``progress_interval_s`` seconds and after the last clip.
    """
    part = os.path.basename(wav_scp)[len("wav."):-len(".scp")]
    split_dir = os.path.dirname(wav_scp)
    audio_dir = os.path.abspath(os.path.join(out_dir, "data"))
    os.makedirs(audio_dir, exist_ok=True)
    wav, samples, skipped = {}, {}, []
    clips = read_kaldi_map(wav_scp)
    for utt, path in progress(clips.items(), total=len(clips), what=f"formatting {wav_scp}",
                              interval_s=progress_interval_s):
        out_path = os.path.join(audio_dir, f"{utt}.flac")
        n, reason, detail = format_one(path, out_path, fs, min_s, max_s)
        if reason:
            skipped.append(Skip(utt, reason, detail))
            logging.warning(f"{wav_scp}: skipped {utt}: {reason} ({detail})")
            continue
        wav[utt], samples[utt] = out_path, str(n)
    write_kaldi_map(os.path.join(split_dir, f"formatted.{part}.scp"), wav)
    write_kaldi_map(os.path.join(split_dir, f"utt2num_samples.{part}"), samples)
    tmp = os.path.join(split_dir, f"skipped.{part}.tsv.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(skipped)
    os.replace(tmp, os.path.join(split_dir, f"skipped.{part}.tsv"))
    return {"kept": len(wav), "skipped": len(skipped)}


def merge_parts(data_dir: str, out_dir: str, nj: int) -> Dict[str, int]:
    """Build the dump dir from the formatted parts (see the module docstring)."""
    split_dir = os.path.join(out_dir, f"split{nj}")
    wav, samples, skipped = {}, {}, []
    for n in range(1, nj + 1):
        wav.update(read_kaldi_map(os.path.join(split_dir, f"formatted.{n}.scp")))
        samples.update(read_kaldi_map(os.path.join(split_dir, f"utt2num_samples.{n}")))
        with open(os.path.join(split_dir, f"skipped.{n}.tsv"), encoding="utf-8", newline="") as f:
            skipped += [Skip(*row) for row in csv.reader(f, delimiter="\t")]
    files = {"wav.scp": wav, "utt2num_samples": samples}
    for name in per_utt_files(data_dir):
        if name != "wav.scp":
            files[name] = {k: v for k, v in read_kaldi_map(os.path.join(data_dir, name)).items() if k in wav}
    if not wav:
        raise ValueError(f"{data_dir}: every utterance was skipped, see {split_dir}/skipped.*.tsv")
    write_data_dir(out_dir, files, read_skip_rows(data_dir))
    append_skipped(out_dir, skipped)
    validate_data_dir(out_dir)
    return {"kept": len(wav), "skipped": len(skipped)}
