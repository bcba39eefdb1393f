"""Collect scored experiments into RESULTS.md (recipe stage 12).

    python -m espnet_s3net.bin.make_results --exp_dirs exp/asr_xlsr exp/asr_s3net_te exp/asr_s3net_lth \\
        --langs "es fr ..." --output exp/RESULTS.md [--high "fr es it ru zh-CN"] [--score score_wer]

One row per experiment (its directory name), one column per language, High / Low / Avg, and
the number of parameters of the experiment's model file (``--model_file`` name).
"""

import argparse
import os
import sys

from espnet_s3net.scoring.results import collect, count_parameters, results_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dirs", nargs="+", required=True)
    parser.add_argument("--langs", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--high", default=None, help="high-resource languages (default: top 5 by XLSR-10 hours)")
    parser.add_argument("--score", default="score_wer", help="score_wer (PER for phones) or score_cer")
    parser.add_argument("--model_file", default="valid.loss.ave.pth")
    args = parser.parse_args(argv)
    langs = args.langs.split()
    try:
        rows = {os.path.basename(d.rstrip("/")): collect(d, langs, args.score) for d in args.exp_dirs}
        params = {os.path.basename(d.rstrip("/")): count_parameters(os.path.join(d, args.model_file))
                  for d in args.exp_dirs}
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"make_results: {exc}")
    metric = "PER" if args.score == "score_wer" else "CER"
    table = results_table(rows, params, langs, args.high.split() if args.high else None, metric)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("# Results\n\n" + table)
    print(table, end="")


if __name__ == "__main__":
    main()
