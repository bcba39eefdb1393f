"""Parameters of a self-supervised XLSR model as the paper's #params column counts them (the
pre-training model with its language modules; masks add none).

    python -m espnet_s3net.bin.count_params --ssl_config exp/pretrain_x/config.yaml \\
        --ssl_model_file exp/pretrain_x/valid.loss.ave.pth
    python -m espnet_s3net.bin.count_params --init /path/xlsr_53_56k.pt

Prints the total; ``--verbose`` also the shared and per-language counts.
"""

import argparse
import sys

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ssl_config", help="config.yaml of a pre-training / continued-training experiment")
    source.add_argument("--init", help="a public checkpoint: fairseq .pt file or Hugging Face directory")
    parser.add_argument("--ssl_model_file", help="the experiment's checkpoint (with --ssl_config)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv=None) -> None:
    setup_logging()
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.ssl_config is not None and args.ssl_model_file is None:
        parser.error("--ssl_config needs --ssl_model_file")
    from espnet_s3net.models.parameter_count import count_parameters
    from espnet_s3net.models.pretrain_model import build_xlsr

    try:
        count = count_parameters(build_xlsr(init_checkpoint=args.init, ssl_config=args.ssl_config,
                                            ssl_model_file=args.ssl_model_file))
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"count_params: {exc}")
    print(count.total)
    if args.verbose:
        print(f"shared {count.shared}; per language {count.per_language}; {count.method}")


if __name__ == "__main__":
    main()
