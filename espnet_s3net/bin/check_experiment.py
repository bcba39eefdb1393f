"""Refuse to reuse an experiment directory with other settings than it was started with.

    python -m espnet_s3net.bin.check_experiment --exp_dir exp/pretrain_xlsr_small \\
        --config conf/pretrain_xlsr_small.yaml --args="--max_epoch 2" --tag_option pretrain_tag \\
        --input train_lang=dump/raw/train_multi/utt2lang --option langs="es fr"

The first run writes ``<exp_dir>/experiment.yaml`` (config content, extra options, inputs
with fingerprints, options); a later run with other settings exits with status 1 and a
message listing every key that differs (see :mod:`espnet_s3net.recipe_experiment`). Give
``--args`` with ``=``, as its value usually starts with ``--``.
"""

import argparse
import logging
import sys

from espnet_s3net.log import setup_logging


def _pairs(values, what: str, parser: argparse.ArgumentParser) -> dict:
    pairs = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            parser.error(f"--{what} takes NAME=VALUE, got {value!r}")
        if name in pairs:
            parser.error(f"--{what} {name} given twice")
        pairs[name] = rest
    return pairs


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", required=True)
    parser.add_argument("--config", default=None, help="the stage's config file (YAML); empty: none")
    parser.add_argument("--args", default="", help="the stage's extra options string")
    parser.add_argument("--input", action="append", metavar="NAME=PATH",
                        help="an upstream file or directory (fingerprinted); repeatable")
    parser.add_argument("--option", action="append", metavar="NAME=VALUE",
                        help="another setting the experiment depends on; repeatable")
    parser.add_argument("--tag_option", default=None,
                        help="the recipe option that names a new experiment directory (for the message)")
    return parser


def main(argv=None) -> None:
    setup_logging()
    parser = get_parser()
    args = parser.parse_args(argv)
    inputs = _pairs(args.input, "input", parser)
    options = _pairs(args.option, "option", parser)
    from espnet_s3net.recipe_experiment import RECORD, check_experiment, describe

    try:
        record = describe(args.config or None, args.args, inputs, options)
        status = check_experiment(args.exp_dir, record, args.tag_option)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"check_experiment: {exc}")
    if status == "same":
        logging.info(f"{args.exp_dir}: same settings as recorded in {RECORD}")
    else:
        logging.info(f"{args.exp_dir}: settings recorded in {args.exp_dir}/{RECORD}")


if __name__ == "__main__":
    main()
