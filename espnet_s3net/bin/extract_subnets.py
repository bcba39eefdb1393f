"""Extract one sub-network mask per language and write them to one mask file (stage 7).

    python -m espnet_s3net.bin.extract_subnets --config conf/extract_te.yaml \\
        --model_config exp/xlsr_pretrain/config.yaml --model_file exp/xlsr_pretrain/valid.loss.ave.pth \\
        --data_root dump/raw --langs "es fr ..." --output exp/subnets_te/masks.pt

Config keys (YAML): method (te | lth | random), scope (layerwise | global), sparsity
(fraction of prunable weights pruned per language), seed, batch_bins (samples per batch),
batches (batches of the language's train data used by TE and LTH), lth_steps, lth_lr,
lth_rounds, include / exclude (regular expressions over XLSR tensor names; default: the
transformer's attention and feed-forward weights).

Every language's passes are seeded with ``seed`` and the language's name (span masks,
negatives, LTH's dropout; TE runs in eval mode), so the masks of a language do not depend on
which other languages are extracted or in which order. Per-language results are kept in
``<output dir>/tmp/<lang>.pt`` and reused when the command is run again with the same config,
so a killed run resumes.
"""

import argparse
import logging
import os
import sys
import zlib

import torch
import yaml

from espnet_s3net.log import setup_logging

DEFAULTS = dict(method="te", scope="layerwise", sparsity=0.5, seed=0, batch_bins=480000, batches=8,
                lth_steps=50, lth_lr=1e-4, lth_rounds=1, include=None, exclude=None)


def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **cfg}


def extract(args) -> None:
    from espnet_s3net.languages import check_languages
    from espnet_s3net.masks.extraction import extract_language, language_batches
    from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
    from espnet_s3net.masks.pruning import DEFAULT_PRUNABLE, prunable_parameters
    from espnet_s3net.models.pretrain_model import find_xlsr
    from espnet_s3net.tasks.xlsr_pretrain import XLSRPretrainTask

    cfg = load_config(args.config)
    if args.seed is not None:
        cfg["seed"] = args.seed
    langs = check_languages(args.langs.split())
    device = torch.device("cuda" if args.ngpu > 0 else "cpu")
    model, _ = XLSRPretrainTask.build_model_from_file(args.model_config, args.model_file, str(device))
    include = cfg["include"] or DEFAULT_PRUNABLE

    def find_params(m):
        return prunable_parameters(find_xlsr(m), include, cfg["exclude"])

    names = list(find_params(model))
    source = parameter_fingerprint(find_xlsr(model), names)
    tmp_dir = os.path.join(os.path.dirname(os.path.abspath(args.output)), "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    dense = {}
    for i, lang in enumerate(langs, 1):
        tmp = os.path.join(tmp_dir, f"{lang}.pt")
        if os.path.exists(tmp):
            saved = torch.load(tmp, weights_only=True)
            if saved["config"] == cfg and saved["source"] == source:
                logging.info(f"[{i}/{len(langs)}] {lang}: reusing {tmp}")
                dense[lang] = saved["masks"]
                continue
        logging.info(f"[{i}/{len(langs)}] {lang}: {cfg['method']} extraction "
                     f"({cfg['scope']}, sparsity {cfg['sparsity']})")
        batches = [] if cfg["method"] == "random" else language_batches(
            os.path.join(args.data_root, f"train_{lang}"), cfg["batch_bins"], cfg["batches"], cfg["seed"])
        # the language's seed does not depend on which other languages are extracted
        lang_seed = cfg["seed"] + zlib.crc32(lang.encode()) % 100003
        masks = extract_language(cfg["method"], model, find_params, batches, cfg, device, lang_seed)
        dense[lang] = {n: m.cpu() for n, m in masks.items()}
        torch.save({"config": cfg, "source": source, "masks": dense[lang]}, tmp + ".tmp")
        os.replace(tmp + ".tmp", tmp)
    meta = {k: cfg[k] for k in ("method", "scope", "sparsity", "seed")}
    meta.update(config=cfg, source_fingerprint=source, source_model=os.path.abspath(args.model_file))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    SubnetMasks.from_dense(dense, meta).save(args.output)
    logging.info(f"wrote {args.output}: {len(langs)} languages, {len(names)} prunable tensors")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--model_config", required=True, help="config.yaml of the pre-training experiment")
    parser.add_argument("--model_file", required=True, help="checkpoint (.pth) of the starting model")
    parser.add_argument("--data_root", required=True, help="dump dir holding train_<lang>/")
    parser.add_argument("--langs", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--ngpu", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        extract(args)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"extract_subnets: {exc}")


if __name__ == "__main__":
    main()
