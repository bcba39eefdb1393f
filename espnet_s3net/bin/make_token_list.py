"""Write an ESPnet token list (recipe stage 4).

``--token_type phn`` (space-separated phones), ``char`` or ``bpe`` (one multilingual
sentencepiece model, written next to the list as ``bpe.model``). See
``espnet_s3net.text.token_list`` for the format.
"""

import argparse
import sys

from espnet_s3net.log import setup_logging
from espnet_s3net.text.token_list import ESPNET_TOKEN_TYPE, build_token_list


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--token_type", required=True, choices=sorted(ESPNET_TOKEN_TYPE))
    parser.add_argument("--text", required=True, help="Kaldi text file: <utt> <transcript>")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--bpe_vocab_size", type=int, default=None)
    parser.add_argument("--bpe_model_type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        build_token_list(args.token_type, args.text, args.output_dir, args.bpe_vocab_size, args.bpe_model_type)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"make_token_list: {exc}")


if __name__ == "__main__":
    main()
