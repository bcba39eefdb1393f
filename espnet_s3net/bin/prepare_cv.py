"""Common Voice release -> Kaldi-style data dirs (recipe stage 1).

Writes ``<data_dir>/{train,dev,test}_<locale>`` and the unions ``train_multi`` and
``dev_multi``: wav.scp, text (normalised), utt2spk, spk2utt, utt2lang, text_phn_list
(when split lists give phones) and skipped.tsv. A clip listed
in more than one split is kept in dev/test and skipped from train; with ``--train_from
validated`` so is every train clip of a dev or test speaker.

``--combine DST SRC...`` only builds a union of existing data dirs.
"""

import argparse
import sys

from espnet_s3net.data.commonvoice import prepare_release
from espnet_s3net.data.kaldi_dir import combine_data_dirs
from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cv_root", help="release directory with <locale>/ folders")
    parser.add_argument("--langs", help='space-separated locales, e.g. "es fr sv-SE"')
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--train_from", default="train", choices=["train", "validated"],
                        help="train.tsv, or validated.tsv minus the dev/test clips and speakers")
    parser.add_argument("--max_train_hours", type=float, default=None)
    parser.add_argument("--split_list_dir", default=None,
                        help="fixed lists <dir>/<locale>/{train,dev,test}.txt: clip_id [phones...]")
    parser.add_argument("--combine", nargs="+", metavar="DIR", help="DST SRC...: only combine data dirs")
    return parser


def main(argv=None) -> None:
    setup_logging()
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        if args.combine:
            if len(args.combine) < 2:
                parser.error("--combine needs DST and at least one SRC")
            combine_data_dirs(args.combine[0], args.combine[1:])
            return
        if not args.cv_root or not args.langs:
            parser.error("--cv_root and --langs are required")
        prepare_release(args.cv_root, args.langs.split(), args.data_dir, args.train_from,
                args.max_train_hours, args.split_list_dir)
    except ValueError as exc:
        sys.exit(f"prepare_cv: {exc}")


if __name__ == "__main__":
    main()
