"""Write phone and character transcripts of data directories of one language (stage 4).

Reads ``DIR/text`` (normalised sentences) and writes ``DIR/text_phn`` (space-separated
phones from phonemizer + espeak-ng, cached in ``--cache_dir``) and ``DIR/text_char``
(the normalised text, the input of char and bpe token types). Utterances whose
sentence phonemizes to nothing are dropped from every file of the directory and
recorded in ``DIR/skipped.tsv``. Phone transcripts given with fixed split lists
(``DIR/text_phn_list``, written by stage 1) are used as they are; only the other
utterances are phonemized. Rerunning gives identical files.
"""

import argparse
import logging
import os
import sys

from espnet_s3net.data.kaldi_dir import drop_utterances, read_kaldi_map, write_kaldi_map
from espnet_s3net.languages import get_language
from espnet_s3net.log import setup_logging
from espnet_s3net.text.phonemize import Phonemizer


def prepare_text(data_dir: str, locale: str, cache_dir: str = None, nj: int = 1) -> dict:
    """Write ``text_phn`` and ``text_char`` of ``data_dir``; return counts."""
    get_language(locale)
    text_path = os.path.join(data_dir, "text")
    if not os.path.isfile(text_path):
        raise FileNotFoundError(f"{text_path} does not exist (run the earlier stages first)")
    text = read_kaldi_map(text_path)
    phn_path = os.path.join(data_dir, "text_phn")
    list_path = os.path.join(data_dir, "text_phn_list")
    given = read_kaldi_map(list_path) if os.path.isfile(list_path) else {}
    given = {utt: phones for utt, phones in given.items() if utt in text and phones.strip()}
    todo = sorted(utt for utt in text if utt not in given)
    phonemizer = Phonemizer(locale, cache_dir=cache_dir, njobs=nj)
    phones = dict(given)
    phones.update(zip(todo, phonemizer(text[utt] for utt in todo)))
    empty = {utt: "phonemizes to nothing" for utt, p in phones.items() if not p.strip()}
    write_kaldi_map(phn_path, {utt: p for utt, p in phones.items() if utt not in empty})
    write_kaldi_map(os.path.join(data_dir, "text_char"), text)
    if empty:
        drop_utterances(data_dir, empty)
        for utt in sorted(empty):
            logging.warning(f"{data_dir}: dropped {utt} ({text[utt]!r} phonemizes to nothing)")
    counts = {"utterances": len(text) - len(empty), "given_phones": len(given),
              "phonemized": len(todo), "dropped": len(empty)}
    logging.info(f"{data_dir}: {counts}")
    return counts


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, nargs="+",
                        help="Kaldi-style data dir(s) of this language, each with a 'text' file")
    parser.add_argument("--locale", required=True, help="language id, e.g. sv-SE")
    parser.add_argument("--cache_dir", default=None, help="phonemizer cache (one tsv per language)")
    parser.add_argument("--nj", type=int, default=1, help="phonemizer worker processes")
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        for data_dir in args.data_dir:
            prepare_text(data_dir, args.locale, args.cache_dir, args.nj)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"prepare_text: {exc}")


if __name__ == "__main__":
    main()
