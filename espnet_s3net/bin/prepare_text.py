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
import sys

from espnet_s3net.log import setup_logging
from espnet_s3net.text.transcripts import prepare_text


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
