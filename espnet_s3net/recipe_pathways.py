"""The recipe's pathways experiment (``s3net.sh --experiment pathways``): the pathway options of
each fine-tuning arm, checked against the run before any training.

The arms fine-tune the same starting model with the same ASR config, data, updates and seed;
they differ only in ``frontend_conf``:

- ``xlsr`` (dense multilingual fine-tuning) and ``fixed_<method>`` (stage 7's masks of
  ``<method>``, fixed before fine-tuning, through ``frontend_conf.mask_file``): no schedule,
  ``pathways: null`` when the config has a schedule block;
- ``agnostic``: the language-agnostic pruned model: every language's pathway starts all ones
  and is pruned by ``magnitude`` (one shared weight tensor, so every language keeps the same
  mask: one mask for all languages, see :mod:`espnet_s3net.masks.pathways`);
- ``pathways``: ASR pathways, every language's pathway all ones at the start and pruned by the
  config's ``importance`` (the configs: ``taylor``, each language's own ``(g·W)²`` summed over
  its updates, so the pathways become language-specific);
- ``dynamic_pathways``: the same plus drop-and-regrow every ``regrow_every`` updates.

The ASR config holds the schedule shared by the pruned arms in ``frontend_conf.pathways``
(:class:`~espnet_s3net.masks.pathways.PathwayConfig` fields), with two recipe-level
differences: ``target_sparsity`` and ``languages`` are not in it (the recipe's
``--pathway_sparsity`` and ``--langs`` give them, one value for every arm), and
``updates_per_round: auto`` with ``prune_share: f`` spreads the rounds over the first
``f`` of the run's updates: ``N = floor(f·T / rounds)`` with ``T = max_epoch ·
(num_iters_per_epoch // accum_grad)``, the count the trainer checks
(:func:`~espnet_s3net.train.masked_trainer.total_updates`), read from the config and the
recipe's ``asr_args``. So the schedule fits any run length given on the command line.
"""

import argparse
import json
import math
import shlex
from typing import Dict, List, Optional, Sequence

import yaml

#: the arms whose masks are learned during fine-tuning
PATHWAY_ARMS = ("agnostic", "pathways", "dynamic_pathways")
#: the arms of ``--experiment pathways``, in table order; ``fixed`` is ``fixed_<method>``
EXPERIMENT_ARMS = ("xlsr", "agnostic", "fixed", "pathways", "dynamic_pathways")
#: keys of the config's schedule block that the recipe reads and drops
RECIPE_KEYS = ("prune_share",)


def load_config(path: str) -> Dict:
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return config


def _run_option(args: Sequence[str], name: str) -> Optional[str]:
    """The last value of ``--name V`` / ``--name=V`` in ``args`` (as ESPnet's parser takes it)."""
    value = None
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def run_updates(config: Dict, asr_args: str = "", where: str = "asr_config") -> int:
    """``max_epoch · (num_iters_per_epoch // accum_grad)`` of the fine-tuning run (config values,
    overridden by ``asr_args``)."""
    args = shlex.split(asr_args or "")
    values = {}
    for name, default in (("max_epoch", 40), ("num_iters_per_epoch", None), ("accum_grad", 1)):
        given = _run_option(args, name)
        value = config.get(name, default) if given is None else given
        if value is None:
            raise ValueError(f"{where} has no num_iters_per_epoch: the pathway schedule counts updates, so the run "
                             "needs a fixed number of them (set num_iters_per_epoch in the config or asr_args)")
        try:
            values[name] = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
        if values[name] < 1:
            raise ValueError(f"{name} must be at least 1, got {values[name]}")
    return values["max_epoch"] * (values["num_iters_per_epoch"] // values["accum_grad"])


def check_sparsity(text: str) -> float:
    """``--pathway_sparsity`` as a float in [0, 1), else ValueError."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"pathway_sparsity must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0 or math.isnan(value):
        raise ValueError(f"pathway_sparsity must be in [0, 1), got {text}")
    return value


def arm_pathways(config: Dict, arm: str, sparsity: float, langs: Sequence[str], updates: int,
                 where: str = "asr_config") -> Optional[Dict]:
    """The ``frontend_conf.pathways`` value of ``arm``: a complete schedule for a pathway arm
    (checked: :class:`PathwayConfig`, fits ``updates``), ``None`` for any other arm."""
    if arm not in PATHWAY_ARMS:
        return None
    from espnet_s3net.masks.pathways import PathwayConfig, check_schedule

    block = (config.get("frontend_conf") or {}).get("pathways")
    if not isinstance(block, dict):
        raise ValueError(f"{where} has no frontend_conf.pathways block (the pruned arms' schedule): use a pathways "
                         "config, e.g. conf/asr_ctc_pathways_small.yaml")
    conf = dict(block)
    for key in ("target_sparsity", "languages"):
        if key in conf:
            raise ValueError(f"{where}: frontend_conf.pathways.{key} comes from the recipe (--pathway_sparsity, "
                             "--langs), the same for every arm: remove it from the config")
    prune_share = conf.pop("prune_share", None)
    rounds = int(conf.get("rounds", PathwayConfig.rounds))
    if conf.get("updates_per_round") == "auto":
        if prune_share is None or not 0.0 < float(prune_share) <= 1.0:
            raise ValueError(f"{where}: updates_per_round: auto needs prune_share in (0, 1], got {prune_share}")
        per_round = int(float(prune_share) * updates // rounds)
        if per_round < 1:
            raise ValueError(f"the run has {updates} updates: prune_share {prune_share} of them is too few for "
                             f"{rounds} pruning rounds; train longer or lower rounds")
        conf["updates_per_round"] = per_round
    elif prune_share is not None:
        raise ValueError(f"{where}: prune_share goes with updates_per_round: auto, not with "
                         f"{conf.get('updates_per_round')!r}")
    conf["target_sparsity"] = sparsity
    if arm == "agnostic":
        conf.update(importance="magnitude", regrow_every=0)
    elif arm == "pathways":
        conf["regrow_every"] = 0
    elif not int(conf.get("regrow_every", 0)):
        raise ValueError(f"{where}: dynamic_pathways needs frontend_conf.pathways.regrow_every > 0 (updates between "
                         "drop-and-regrow steps)")
    schedule = PathwayConfig(**conf)
    check_schedule(schedule, updates)
    if schedule.regrow_every and not _regrows(schedule, updates):
        raise ValueError(f"dynamic_pathways: no drop-and-regrow step in the run's {updates} updates (regrow_every "
                         f"{schedule.regrow_every}, pruning rounds end at multiples of {schedule.updates_per_round}); "
                         "lower regrow_every or train longer")
    return {**{k: conf[k] for k in sorted(conf)}, "languages": list(langs)}


def _regrows(config, updates: int) -> bool:
    """Whether some update ``t ≤ updates`` is a regrow (a multiple of K that ends no round)."""
    for t in range(config.regrow_every, updates + 1, config.regrow_every):
        if not (t % config.updates_per_round == 0 and t // config.updates_per_round <= config.rounds):
            return True
    return False


def arm_options(asr_config: str, asr_args: str, arms: Sequence[str], sparsity: str, langs: Sequence[str]
                ) -> List[str]:
    """``<arm> <value>`` lines: the ``frontend_conf.pathways`` value of each arm as one word
    (compact JSON, which YAML reads; ``null``: no schedule although the config has one; ``-``:
    nothing to pass)."""
    config = load_config(asr_config)
    value = check_sparsity(sparsity)
    has_block = isinstance((config.get("frontend_conf") or {}).get("pathways"), dict)
    updates = run_updates(config, asr_args, asr_config) if any(a in PATHWAY_ARMS for a in arms) else 0
    lines = []
    for arm in arms:
        conf = arm_pathways(config, arm, value, langs, updates, asr_config)
        if conf is not None:
            word = json.dumps(conf, separators=(",", ":"))
        else:
            word = "null" if has_block else "-"
        if any(c.isspace() for c in word):
            raise ValueError(f"the pathway options of {arm} hold white space: {word}")
        lines.append(f"{arm} {word}")
    return lines


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The frontend_conf.pathways value of each recipe arm "
                                     "(python -m espnet_s3net.bin.pathway_options)")
    parser.add_argument("--asr_config", required=True)
    parser.add_argument("--asr_args", default="", help="the recipe's asr_args (may change the number of updates)")
    parser.add_argument("--arms", required=True, help="fine-tuning models (finetune_models)")
    parser.add_argument("--sparsity", required=True, help="target sparsity of every pruned arm, in [0, 1)")
    parser.add_argument("--langs", required=True)
    return parser
