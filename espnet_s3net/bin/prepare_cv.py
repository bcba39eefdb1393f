"""Common Voice release -> Kaldi-style data dirs (recipe stage 1).

Writes ``<data_dir>/{train,dev,test}_<locale>`` and the unions ``train_multi`` and
``dev_multi``: wav.scp, text (normalised), utt2spk, spk2utt, utt2lang, text_phn_list
(when split lists give phones) and skipped.tsv. A clip listed
in more than one split is kept in dev/test and skipped from train; with ``--train_from
validated`` so is every train clip of a dev or test speaker.

``--combine DST SRC...`` only builds a union of existing data dirs.
"""

import argparse
import logging
import os
import sys
from collections import Counter

from espnet_s3net.data.commonvoice import SPLITS, check_release, prepare_locale
from espnet_s3net.data.kaldi_dir import Skip, combine_data_dirs, write_data_dir
from espnet_s3net.languages import check_languages
from espnet_s3net.log import setup_logging


def write_split(data_dir: str, name: str, utts, skips) -> None:
    files = {
        "wav.scp": {u.utt_id: u.audio for u in utts},
        "text": {u.utt_id: u.text for u in utts},
        "utt2spk": {u.utt_id: u.speaker for u in utts},
        "utt2lang": {u.utt_id: u.locale for u in utts},
    }
    if any(u.phones for u in utts):
        files["text_phn_list"] = {u.utt_id: u.phones for u in utts if u.phones}
    write_data_dir(os.path.join(data_dir, name), files, skips)
    counts = Counter(skip.reason for skip in skips)
    detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))
    logging.info(f"{name}: {len(utts)} utterances, {len(skips)} skipped" + (f" ({detail})" if detail else ""))


def prepare(cv_root: str, langs, data_dir: str, train_from: str, max_train_hours, split_list_dir) -> None:
    check_languages(langs)
    check_release(cv_root, langs)
    for locale in langs:
        splits = prepare_locale(cv_root, locale, train_from, max_train_hours, split_list_dir)
        held_out = {u.audio for split in ("dev", "test") for u in splits[split][0]}
        train, train_skips = splits["train"]
        overlap = [u for u in train if u.audio in held_out]
        splits["train"] = ([u for u in train if u.audio not in held_out],
                           train_skips + [Skip(os.path.basename(u.audio), "duplicate clip path (also in dev/test)")
                                          for u in overlap])
        for split in SPLITS:
            utts, skips = splits[split]
            if not utts:
                raise ValueError(f"{locale} {split}: no usable utterance ({len(skips)} skipped)")
            write_split(data_dir, f"{split}_{locale}", utts, skips)
    for split in ("train", "dev"):
        combine_data_dirs(os.path.join(data_dir, f"{split}_multi"),
                          [os.path.join(data_dir, f"{split}_{loc}") for loc in langs])


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
        prepare(args.cv_root, args.langs.split(), args.data_dir, args.train_from,
                args.max_train_hours, args.split_list_dir)
    except ValueError as exc:
        sys.exit(f"prepare_cv: {exc}")


if __name__ == "__main__":
    main()
