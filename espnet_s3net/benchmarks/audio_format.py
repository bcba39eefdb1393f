"""Throughput of the stage-3 audio formatting job (mp3 48 kHz -> FLAC 16 kHz) on one thread.

Creates ``--clips`` synthetic 48 kHz MP3 clips of ``--seconds`` each, runs one formatting
job over them ``--repeats`` times and reports the median real-time factor
``audio seconds / wall seconds`` per job.
"""

import argparse
import os
import statistics
import tempfile
import time
from typing import List

import numpy as np


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark audio_format", description=__doc__)
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    from espnet_s3net.data.audio_format import format_part
    from espnet_s3net.data.kaldi_dir import write_kaldi_map
    from espnet_s3net.synth.corpus import encode_mp3

    rng = np.random.default_rng(0)
    t = np.arange(int(48000 * args.seconds)) / 48000
    with tempfile.TemporaryDirectory(prefix="audio_format_bench_") as tmp:
        wav = {}
        for i in range(args.clips):
            audio = 0.2 * np.sin(2 * np.pi * (150 + 10 * i) * t) + 0.02 * rng.standard_normal(t.size)
            path = os.path.join(tmp, f"clip{i}.mp3")
            with open(path, "wb") as f:
                f.write(encode_mp3(audio))
            wav[f"utt{i:03d}"] = path
        scp = os.path.join(tmp, "split1", "wav.1.scp")
        os.makedirs(os.path.dirname(scp))
        write_kaldi_map(scp, wav)
        walls = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            format_part(scp, os.path.join(tmp, "out"))
            walls.append(time.perf_counter() - start)
    audio_s = args.clips * args.seconds
    wall = statistics.median(walls)
    return {"rtf_x": audio_s / wall, "audio_s": audio_s, "wall_s": wall, "target_x": 100,
            "meets_target": audio_s / wall >= 100, "clips": args.clips, "repeats": args.repeats}
