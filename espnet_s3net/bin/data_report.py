"""Print and write the data report (recipe stage 5): per language utterances / hours /
speakers per split, skipped items by reason, phone inventories, token list sizes."""

import argparse
import os
import sys

from espnet_s3net.data.report import build_report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dump_dir", required=True, help="e.g. dump/raw")
    parser.add_argument("--langs", required=True, help='space-separated language ids, e.g. "es fr"')
    parser.add_argument("--token_list_dir", required=True, help="e.g. data/token_list")
    parser.add_argument("--data_dir", default=None,
                        help="raw data dirs: their skips count too (once where stage 3 copied them)")
    parser.add_argument("--output", required=True, help="markdown file, e.g. data/data_report.md")
    return parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    try:
        report = build_report(args.dump_dir, args.langs.split(), args.token_list_dir, args.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"data_report: {exc}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(report)
    print(report, end="")


if __name__ == "__main__":
    main()
