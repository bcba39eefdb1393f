"""Decoding real-time factor of several fine-tuned models measured in one run, with each one's
ratio to a control (the recipe's DistilXLSR experiment, stage 12: students vs teacher).

    python -m espnet_s3net.bin.compare_rtf --control teacher \\
        --model teacher=exp/t/asr/config.yaml,exp/t/asr/valid.loss.ave.pth \\
        --model distilxlsr=exp/s/asr/config.yaml,exp/s/asr/valid.loss.ave.pth \\
        --data_root dump/raw --test_sets test_es test_it --output exp/rtf_distilxlsr.txt \\
        [--rounds 3] [--max_utts 50] [--threads 1] [--ngpu 0]

Every model decodes the same utterances (CTC greedy, as stage 10) in alternating rounds after
a warm-up round; see :mod:`espnet_s3net.scoring.rtf`. Writes ``name rtf ratio`` lines.
"""

import argparse
import sys

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CONFIG,MODEL_FILE",
                        help="a fine-tuned ASR model; repeatable (the first is timed first in the warm-up)")
    parser.add_argument("--control", required=True, help="the model the others' ratios refer to")
    parser.add_argument("--data_root", required=True)
    parser.add_argument("--test_sets", nargs="+", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_utts", type=int, default=0, help="> 0: the first N utterances of each set")
    parser.add_argument("--batch_bins", type=int, default=1_600_000, help="padded samples per batch")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch")
    parser.add_argument("--ngpu", type=int, default=0)
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    from espnet_s3net.scoring.rtf import compare_rtf, format_header, names_in_order, write_rtf_file

    try:
        models = {}
        for value in args.model:
            name, sep, files = value.partition("=")
            config, comma, model_file = files.partition(",")
            if not sep or not name or not comma or not config or not model_file:
                raise ValueError(f"--model takes NAME=CONFIG,MODEL_FILE, got {value!r}")
            names_in_order([*models, name])
            models[name] = (config, model_file)
        device = "cuda" if args.ngpu > 0 else "cpu"
        results = compare_rtf(models, args.control, args.data_root, args.test_sets, args.rounds, args.max_utts,
                              args.batch_bins, device, args.threads)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"compare_rtf: {exc}")
    audio_s = next(iter(results.values()))["audio_s"]
    write_rtf_file(args.output, results, format_header(args.test_sets, args.rounds, args.max_utts, audio_s,
                                                       device, args.threads, args.control))
    for name, r in results.items():
        print(f"{name} RTF {r['rtf']:.4f} ({r['ratio']:.3f} x {args.control})")


if __name__ == "__main__":
    main()
