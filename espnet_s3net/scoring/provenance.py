"""Where the scored experiments come from: their starting model, seeds, scoring tool, and the
environment block of RESULTS.md.

Starting model. Results of arms that started from different pre-trained models are not put
in one table. What an experiment dir records is read, in this order:

1. ``experiment.yaml`` (the recipe's record of an experiment: config, extra options and
   every upstream input with a content fingerprint). Its input ``ssl_model`` is followed to
   the directory of that checkpoint and its record, as long as that record has an
   ``ssl_model`` too (continued training: S3Net with masks, or the dense control without): the
   pre-trained model is the ``ssl_model`` whose directory records none (a pre-training). An
   ``init`` input (a public checkpoint) is the starting model when the experiment starts from
   it directly, or when the experiment lives inside the directory that records it as its
   ``init`` (the recipe's ``init_<tag>`` dir with ``skip_pretrain``); otherwise (a pre-training
   that started from it) the pre-training's checkpoint is. Models are compared by the recorded
   fingerprint (size and sha256 of the checkpoint).
2. Without a record, ``config.yaml``'s ``frontend_conf.init_checkpoint`` (a public
   checkpoint), compared by a fingerprint of the file when it exists, else by its path.
3. ``config.yaml``'s ``frontend_conf.xlsr_conf``: the architecture (layers, widths, conv stack,
   quantizer sizes) must agree between all experiments that record one.

Limits: a recorded path that cannot be found (an experiment tree moved without its
upstream directories) stops the chain, and that experiment's starting model is reported as
not checked; so is one whose directory records neither. Checkpoints are told apart by
content: the same pre-trained weights copied to two places count as one model, and a model
trained again with the same settings counts as another.
"""

import datetime
import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from espnet_s3net.recipe_experiment import fingerprint

#: the recipe's record of an experiment (written by the recipe before a stage starts)
EXPERIMENT_RECORD = "experiment.yaml"
#: XLSRConfig fields that make the architecture (the others are training settings)
ARCHITECTURE_KEYS = ("extractor_mode", "conv_layers", "conv_bias", "embed_dim", "num_layers", "num_heads", "ffn_dim",
                     "pos_conv_kernel", "pos_conv_groups", "layer_norm_first", "final_dim", "codevector_dim",
                     "latent_groups", "latent_vars")


@dataclass
class StartingModel:
    """The pre-trained model an experiment starts from.

    Attributes:
        key: what models are compared by (a fingerprint, or ``path:<realpath>``); None: unknown.
        path: the model's path as recorded.
        how: where it was found (for messages).
        architecture: the XLSR architecture fields of ``config.yaml`` (None: not recorded).
    """

    key: Optional[str]
    path: Optional[str]
    how: str
    architecture: Optional[Dict[str, Any]] = None

    def describe(self) -> str:
        """``<path> (sha256 <first 12 hex digits>)``, or ``not checked``."""
        if self.key is None:
            return "not checked"
        if "sha256 " in self.key:
            return f"{self.path} (sha256 {self.key.split('sha256 ')[-1][:12]})"
        return str(self.path)


def _load_yaml(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    return data if isinstance(data, dict) else None


def resolve_recorded_path(path: str, exp_dir: str) -> Optional[str]:
    """A path as the recipe records it (relative to the recipe dir): absolute, relative to the
    current directory, or relative to a directory above ``exp_dir``; None when not found."""
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    if os.path.exists(path):
        return os.path.abspath(path)
    here = os.path.realpath(exp_dir)
    while True:
        candidate = os.path.join(here, path)
        if os.path.exists(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _architecture(config: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    conf = ((config or {}).get("frontend_conf") or {}).get("xlsr_conf")
    if not isinstance(conf, dict):
        return None
    return {k: conf[k] for k in ARCHITECTURE_KEYS if k in conf}


def _inside_init_dir(exp_dir: str, fingerprint: Optional[str]) -> bool:
    """Whether a directory above ``exp_dir`` records the public checkpoint ``fingerprint`` as its
    ``init`` (the recipe's ``init_<tag>`` dir, which holds the experiments that start from it)."""
    here = os.path.dirname(os.path.realpath(exp_dir))
    while True:
        record = _load_yaml(os.path.join(here, EXPERIMENT_RECORD))
        init = ((record or {}).get("inputs") or {}).get("init") or {}
        if init and init.get("fingerprint") == fingerprint:
            return True
        parent = os.path.dirname(here)
        if parent == here:
            return False
        here = parent


def starting_model(exp_dir: str) -> StartingModel:
    """The pre-trained model ``exp_dir`` (a fine-tuning experiment) starts from (see the module's doc)."""
    config = _load_yaml(os.path.join(exp_dir, "config.yaml"))
    architecture = _architecture(config)
    record_dir = exp_dir
    record = _load_yaml(os.path.join(exp_dir, EXPERIMENT_RECORD))
    if record is not None:
        came_from: Optional[Tuple[Dict[str, Any], str]] = None  # the ssl_model entry that led to record_dir
        for _ in range(16):  # longer than the recipe's chains (fine-tuning <- continued training <- pre-training)
            inputs = record.get("inputs") or {}
            if "ssl_model" in inputs:
                entry = inputs["ssl_model"] or {}
                found = resolve_recorded_path(str(entry.get("path")), record_dir)
                if found is None:
                    return StartingModel(None, entry.get("path"), f"{entry.get('path')}, recorded in "
                                         f"{os.path.join(record_dir, EXPERIMENT_RECORD)}, not found", architecture)
                came_from = (entry, found)
                record_dir = os.path.dirname(found)
                record = _load_yaml(os.path.join(record_dir, EXPERIMENT_RECORD))
                if record is None:  # a model directory without a record: the model itself
                    break
                continue
            if "init" in inputs:
                entry = inputs["init"] or {}
                # the public checkpoint is the starting model of an experiment that starts from it
                # directly, or of a continued training in the init dir; a pre-training from it made
                # the model the chain came from
                if came_from is None or _inside_init_dir(record_dir, entry.get("fingerprint")):
                    return StartingModel(entry.get("fingerprint"), entry.get("path"), "init of experiment.yaml",
                                         architecture)
            break
        else:
            return StartingModel(None, None, "chain of experiment records too long", architecture)
        if came_from is None:
            return StartingModel(None, None, f"{os.path.join(record_dir, EXPERIMENT_RECORD)} records no "
                                 "ssl_model or init input", architecture)
        entry, found = came_from
        return StartingModel(entry.get("fingerprint") or fingerprint(found), entry.get("path"),
                             "ssl_model of experiment.yaml", architecture)
    init = ((config or {}).get("frontend_conf") or {}).get("init_checkpoint")
    if init:
        found = resolve_recorded_path(str(init), exp_dir)
        if found is not None and os.path.isfile(found):
            return StartingModel(fingerprint(found), str(init), "init_checkpoint of config.yaml", architecture)
        key = f"path:{os.path.realpath(found)}" if found else f"path:{init}"
        return StartingModel(key, str(init), "init_checkpoint of config.yaml", architecture)
    return StartingModel(None, None, f"no {EXPERIMENT_RECORD} and no init_checkpoint in config.yaml", architecture)


def check_starting_models(arms: Mapping[str, Sequence[str]], architectures_may_differ: bool = False
                          ) -> Tuple[Dict[str, StartingModel], List[str]]:
    """Refuse (``ValueError``) seeds of an arm or arms that start from different pre-trained
    models or architectures, naming them. Returns the starting model of every experiment dir
    and a line per reason why some could not be checked (naming them).
    ``architectures_may_differ``: arms may have different XLSR architectures (DistilXLSR's
    students of a teacher, which all start from the teacher); an arm's seeds may not."""
    found = {arm: [(d, starting_model(d)) for d in dirs] for arm, dirs in arms.items()}
    reasons: Dict[str, List[str]] = {}
    for pairs in found.values():
        for d, model in pairs:
            if model.key is None:
                reasons.setdefault(model.how, []).append(d)
    unchecked = [f"starting model not checked ({how}): {', '.join(dirs)}" for how, dirs in reasons.items()]
    def architecture(model: StartingModel) -> Optional[str]:
        return repr(sorted(model.architecture.items())) if model.architecture else None

    for what, get in (("pre-trained model", lambda m: m.key), ("XLSR architecture", architecture)):
        per_arm: Dict[str, Tuple[str, StartingModel]] = {}
        for arm, pairs in found.items():
            known = [(d, m) for d, m in pairs if get(m) is not None]
            for d, m in known[1:]:
                if get(m) != get(known[0][1]):
                    raise ValueError(f"the seeds of arm {arm} start from different {what}s: {known[0][0]} from "
                                     f"{_what(known[0][1], what)}, {d} from {_what(m, what)}")
            if known:
                per_arm[arm] = known[0]
        if architectures_may_differ and what == "XLSR architecture":
            continue
        keys: Dict[str, List[str]] = {}
        for arm, (_, m) in per_arm.items():
            keys.setdefault(get(m), []).append(arm)
        if len(keys) > 1:
            parts = [f"{', '.join(names)} from {_what(per_arm[names[0]][1], what)}" for names in keys.values()]
            raise ValueError(f"arms start from different {what}s, whose results are not put in one table: "
                             + "; ".join(parts))
    return {d: model for pairs in found.values() for d, model in pairs}, unchecked


def _what(model: StartingModel, what: str) -> str:
    if what == "XLSR architecture":
        arch = model.architecture or {}
        return ", ".join(f"{k}={arch[k]}" for k in ("num_layers", "embed_dim", "ffn_dim", "num_heads") if k in arch) \
            or "another architecture"
    return model.describe()


def seed_values(dirs: Sequence[str]) -> Dict[str, Any]:
    """``seed`` of each experiment's ``config.yaml`` (ESPnet writes it), where recorded."""
    out = {}
    for d in dirs:
        config = _load_yaml(os.path.join(d, "config.yaml"))
        if config and "seed" in config:
            out[d] = config["seed"]
    return out


def duplicate_seeds(arms: Mapping[str, Sequence[str]]) -> List[str]:
    """Warnings for arms whose experiment dirs record the same training seed."""
    warnings = []
    for arm, dirs in arms.items():
        by_seed: Dict[Any, List[str]] = {}
        for d, seed in seed_values(dirs).items():
            by_seed.setdefault(seed, []).append(d)
        for seed, same in by_seed.items():
            if len(same) > 1:
                warnings.append(f"arm {arm}: {', '.join(same)} all record seed {seed} in config.yaml")
    return warnings


def scoring_tool(result_txt: str) -> str:
    """``jiwer`` when the result.txt was written by the jiwer fallback, else ``sclite``."""
    with open(result_txt, encoding="utf-8") as f:
        return "jiwer" if f.readline().startswith("computed with jiwer") else "sclite"


def _git(args: Sequence[str], cwd: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # not installed, or no metadata
        return "not installed"


def environment(configs: Sequence[str] = (), cwd: Optional[str] = None) -> str:
    """The environment block ESPnet writes at the top of RESULTS.md (date, python, espnet and
    pytorch versions, git hash and commit date), plus this package's version and the config
    files, each with the start of its sha256."""
    cwd = cwd or os.getcwd()
    lines = ["## Environments",
             f"- date: `{datetime.datetime.now().astimezone().strftime('%a %b %d %H:%M:%S %Z %Y')}`",
             f"- python version: `{platform.python_version()}`",
             f"- espnet version: `espnet {_version('espnet')}`",
             f"- pytorch version: `pytorch {_version('torch')}`",
             f"- espnet_s3net version: `{_version('espnet_s3net')}`"]
    repo = cwd if _git(["rev-parse", "HEAD"], cwd) else os.path.dirname(os.path.abspath(__file__))
    commit = _git(["rev-parse", "HEAD"], repo)
    if commit:
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], repo)
        lines.append(f"- Git hash: `{commit}`" + (" (with uncommitted changes)" if dirty else ""))
        date = _git(["log", "-1", "--format=%cd"], repo)
        if date:
            lines.append(f"  - Commit date: `{date}`")
    else:
        lines.append("- Git hash: not available (not in a git repository)")
    if configs:
        lines.append("- config files:")
        for path in configs:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"config file {path} does not exist")
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()[:12]
            lines.append(f"  - `{path}` (sha256 `{digest}`)")
    return "\n".join(lines) + "\n"
