"""Generate a synthetic Common Voice release (espeak-ng speech of real CLDR words).

Writes ``OUT/<locale>/{validated,train,dev,test}.tsv``, ``OUT/<locale>/clips/*.mp3``
(48 kHz mono) and ``OUT/synth_cv.json``. See :mod:`espnet_s3net.synth.corpus`.
"""

import argparse
import sys
from typing import List, Optional

from espnet_s3net.languages import LANGUAGES, XLSR10
from espnet_s3net.log import setup_logging
from espnet_s3net.synth.corpus import SIZES, CorpusExistsError, generate_corpus


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output directory (the release root)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny",
                        help="corpus size preset: tiny (~40 s French train audio), "
                             "small (~10 min French train audio)")
    parser.add_argument("--langs", nargs="+", default=list(XLSR10), metavar="LOCALE",
                        help=f"Common Voice locales (default: XLSR-10). Supported: "
                             f"{' '.join(sorted(LANGUAGES))}")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply all durations / clip counts by this factor")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a different corpus found in --out")
    parser.add_argument("--nj", type=int, default=1, help="languages generated in parallel")
    parser.add_argument("--log_level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        generate_corpus(
            args.out, size=args.size, langs=args.langs, seed=args.seed, scale=args.scale,
            overwrite=args.overwrite, nj=args.nj,
        )
    except (ValueError, CorpusExistsError) as exc:
        sys.exit(f"synth_cv: error: {exc}")


if __name__ == "__main__":
    main()
