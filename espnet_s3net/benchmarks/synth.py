"""Speed of the synthetic Common Voice generator on one core.

Generates a corpus (default: tiny, four languages) into a temporary directory
``--repeats`` times with ``nj=1`` and one thread per library, and reports the
median real-time factor ``audio seconds / wall seconds`` (whole run, including
the worker process start) and, inside the workers, the share of each stage
(espeak-ng synthesis, 22.05 -> 48 kHz resampling, MP3 encoding).

It also compares the generator's MP3 encoder (``encode_mp3``: LAME through
lameenc, fast mode) with soundfile's built-in MP3 writer on the same clips
(alternating, median of repetitions).
"""

import argparse
import io
import os
import statistics
import tempfile
import time
from typing import List

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _single_thread() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _encoder_ratio(repeats: int) -> dict:
    """Wall-time ratio soundfile's MP3 writer / the generator's encoder on the same audio."""
    import numpy as np
    import soundfile as sf
    import soxr

    from espnet_s3net.synth.corpus import MP3_BITRATE_KBPS, MP3_QUALITY, SAMPLE_RATE, encode_mp3
    from espnet_s3net.synth.espeak import get_engine

    engine = get_engine()
    voice = engine.voice_name("fr-fr", "m3")
    clips = [
        soxr.resample(
            engine.synthesize(text, voice).astype(np.float32) / 32768.0,
            engine.sample_rate, SAMPLE_RATE, quality="HQ",
        )
        for text in ("janvier février mars avril", "Allemagne Espagne Italie", "lundi mardi mercredi")
    ]

    def timed(encode) -> float:
        start = time.perf_counter()
        for clip in clips:
            encode(clip)
        return time.perf_counter() - start

    ratios = []
    for _ in range(repeats):
        soundfile_s = timed(lambda clip: sf.write(io.BytesIO(), clip, SAMPLE_RATE, format="MP3"))
        ours_s = timed(encode_mp3)
        ratios.append(soundfile_s / ours_s)
    return {
        "mp3_speedup_vs_soundfile": statistics.median(ratios),
        "mp3_settings": {"kbps": MP3_BITRATE_KBPS, "lame_quality": MP3_QUALITY},
    }


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark synth", description=__doc__)
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--langs", nargs="+", default=["fr", "es", "sv-SE", "zh-CN"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    _single_thread()
    from espnet_s3net.synth.corpus import generate_corpus

    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="synth_bench_") as tmp:
            result = generate_corpus(
                os.path.join(tmp, "cv"), size=args.size, langs=args.langs, seed=args.seed, nj=1
            )
        locales = result["run"]["locales"].values()
        audio = sum(loc["audio_s"] for loc in locales)
        stages = {
            stage: sum(loc["timings"][stage] for loc in locales)
            for stage in ("synth_s", "resample_s", "encode_s")
        }
        runs.append(
            {"audio_s": audio, "wall_s": result["run"]["wall_s"],
             "worker_s": sum(loc["wall_s"] for loc in locales), **stages}
        )
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    audio = median["audio_s"]
    return {
        "rtf_x": audio / median["wall_s"],
        "rtf_x_workers": audio / median["worker_s"],
        "audio_s": audio,
        "wall_s": median["wall_s"],
        "stage_x": {
            "espeak": audio / median["synth_s"],
            "resample": audio / median["resample_s"],
            "mp3": audio / median["encode_s"],
        },
        "mp3_share": median["encode_s"] / median["worker_s"],
        "target_x": 500,
        "meets_target": audio / median["wall_s"] >= 500,
        **_encoder_ratio(args.repeats),
        "size": args.size,
        "langs": args.langs,
        "repeats": args.repeats,
    }
