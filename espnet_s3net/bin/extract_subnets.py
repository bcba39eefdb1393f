"""Extract one sub-network mask per language and write them to one mask file (stage 7).

    python -m espnet_s3net.bin.extract_subnets --config conf/extract_te.yaml \\
        --model_config exp/pretrain_xlsr_small/config.yaml \\
        --model_file exp/pretrain_xlsr_small/valid.loss.ave.pth \\
        --data_root dump/raw --langs "es fr ..." --output exp/pretrain_xlsr_small/subnets_te/masks.pt

    python -m espnet_s3net.bin.extract_subnets --config conf/extract_te.yaml --init /models/xlsr_53_56k.pt \\
        --data_root dump/raw --langs "es fr ..." --output exp/init_xlsr_53_56k/subnets_te/masks.pt

The model is a checkpoint of our pre-training (``--model_config`` + ``--model_file``) or a
public checkpoint (``--init``: a fairseq wav2vec 2.0 / XLSR ``.pt`` file or a Hugging Face
wav2vec2 directory); the mask file's ``source_model`` names the checkpoint file or directory.

Config keys (YAML): method (te | lth | random), scope (layerwise | global), sparsity
(fraction of prunable weights pruned per language), pattern (unstructured, or "n:m" quoted:
n kept of every m consecutive input weights of each row, e.g. "2:4" for sparse tensor cores;
sparsity must then be 1 - n/m), seed, batch_bins (samples per batch),
batches (batches of the language's train data used by TE and LTH), lth_steps, lth_lr,
lth_rounds, include / exclude (regular expressions over XLSR tensor names; default: the
transformer's attention and feed-forward weights).

Every language's passes are seeded with ``seed`` and the language's name (span masks,
negatives, LTH's dropout; TE runs in eval mode), so the masks of a language do not depend on
which other languages are extracted or in which order. Per-language results are kept in
``<output dir>/tmp/<lang>.pt`` and reused when the command is run again with the same config
and model, so a killed run resumes. The work is :func:`espnet_s3net.masks.extraction.extract_subnets`.
"""

import argparse
import sys

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_file", help="checkpoint (.pth) of a pre-training experiment (with --model_config)")
    source.add_argument("--init", help="public checkpoint: fairseq .pt file or Hugging Face wav2vec2 directory")
    parser.add_argument("--model_config", help="config.yaml of the pre-training experiment of --model_file")
    parser.add_argument("--data_root", required=True, help="dump dir holding train_<lang>/")
    parser.add_argument("--langs", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--ngpu", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="overrides the config's sparsity (the recipe's pathways experiment: --pathway_sparsity)")
    return parser


def main(argv=None) -> None:
    setup_logging()
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.model_file is not None and args.model_config is None:
        parser.error("--model_file needs --model_config")
    if args.init is not None and args.model_config is not None:
        parser.error("--model_config goes with --model_file, not with --init")
    import torch

    from espnet_s3net.masks.extraction import extract_subnets, load_config, load_source_model

    try:
        langs = args.langs.split()
        cfg = load_config(args.config)
        if args.seed is not None:
            cfg["seed"] = args.seed
        if args.sparsity is not None:
            if not 0.0 <= args.sparsity < 1.0:
                raise ValueError(f"--sparsity must be in [0, 1), got {args.sparsity}")
            cfg["sparsity"] = args.sparsity
        device = torch.device("cuda" if args.ngpu > 0 else "cpu")
        model, source_model = load_source_model(device, args.model_config, args.model_file, args.init)
        extract_subnets(model, langs, args.data_root, cfg, args.output, device, source_model)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"extract_subnets: {exc}")


if __name__ == "__main__":
    main()
