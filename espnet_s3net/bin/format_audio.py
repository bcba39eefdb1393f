"""Audio formatting of a data dir into a dump dir (recipe stage 3).

    format_audio split --data_dir data/train_es --out_dir dump/raw/train_es --nj 4
    format_audio job   --wav_scp dump/raw/train_es/split4/wav.1.scp --out_dir dump/raw/train_es
    format_audio merge --data_dir data/train_es --out_dir dump/raw/train_es --nj 4

``job`` decodes (mp3, any libsndfile format), downmixes, resamples to ``--fs`` and writes
FLAC, logging its progress (clips done/total, elapsed time and ETA at most every
``--progress_interval`` seconds); clips that cannot be decoded or fall outside
``--min_duration``/``--max_duration`` are skipped with the reason (and the decoder's message
or the duration as its detail) in the dump dir's ``skipped.tsv``.
"""

import argparse
import logging
import sys

from espnet_s3net.data.audio_format import format_part, merge_parts, split_scp
from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["split", "job", "merge"])
    parser.add_argument("--data_dir")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--wav_scp", help="one part (job)")
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument("--fs", type=int, default=16000)
    parser.add_argument("--min_duration", type=float, default=0.0, help="seconds; shorter clips are skipped")
    parser.add_argument("--max_duration", type=float, default=0.0, help="seconds; 0 = no limit")
    parser.add_argument("--progress_interval", type=float, default=10.0,
                        help="job: seconds between progress lines (done/total, elapsed, ETA)")
    return parser


def main(argv=None) -> None:
    setup_logging()
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        if args.step == "split":
            if not args.data_dir:
                parser.error("split needs --data_dir")
            parts = split_scp(args.data_dir, args.out_dir, args.nj)
            print(len(parts))
        elif args.step == "job":
            if not args.wav_scp:
                parser.error("job needs --wav_scp")
            counts = format_part(args.wav_scp, args.out_dir, args.fs, args.min_duration, args.max_duration,
                                 progress_interval_s=args.progress_interval)
            logging.info(f"{args.wav_scp}: {counts}")
        else:
            if not args.data_dir:
                parser.error("merge needs --data_dir")
            counts = merge_parts(args.data_dir, args.out_dir, args.nj)
            logging.info(f"{args.out_dir}: {counts['kept']} utterances, {counts['skipped']} skipped")
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"format_audio: {exc}")


if __name__ == "__main__":
    main()
