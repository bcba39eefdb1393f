"""The source language, evaluation languages and arms of the recipe's DistilXLSR experiment,
and the checks and data directories of its stage 8.

    python -m espnet_s3net.bin.distilxlsr_options plan --langs "es fr it" [--source_lang fr] \\
        --distill_config conf/distill_xlsr_small.yaml
    python -m espnet_s3net.bin.distilxlsr_options check_source --data_dir dump/raw/train_fr --min_utts 10
    python -m espnet_s3net.bin.distilxlsr_options subset --data_dir dump/raw/train_fr \\
        --like dump/raw/train_fr_shuffled --out_dir dump/raw/train_fr_unshuffled

``plan`` prints ``source <lang>``, ``langs <lang> ...`` and one ``arm <name> <init> <data>``
line per arm; ``check_source`` the number of utterances to shuffle; ``subset`` the number of
utterances written. Bad input (a source language not in --langs, no other language, a missing
config, a source set too small to shuffle): exit status 1 with the reason. See
:mod:`espnet_s3net.recipe_distilxlsr`.
"""

import sys

from espnet_s3net.recipe_distilxlsr import get_parser, run


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    try:
        out = run(args)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"distilxlsr_options: {exc}")
    if out is not None:
        print(out)


if __name__ == "__main__":
    main()
