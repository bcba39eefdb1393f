"""What a recipe experiment was started with, so that it is never reused with other settings.

Before a stage of the recipe starts, resumes or skips an experiment (pre-training,
sub-network extraction, S3Net training, fine-tuning) it describes what the experiment
depends on (:func:`describe`) and calls :func:`check_experiment`. The first call writes
``<exp_dir>/experiment.yaml``:

- ``config``: the content of the stage's config file (parsed YAML, so comments and layout
  do not count) and ``config_file``, its path (for the reader; not compared);
- ``args``: the stage's extra options string (``--pretrain_args``, ...);
- ``inputs``: every upstream input (starting checkpoint, masks, data files) with its path
  and a fingerprint of its content (size and sha256; of every file in a directory);
- ``options``: other recipe settings the result depends on (token type, languages, ...).

A later call with a different description raises :class:`ExperimentChanged`, whose
message lists every key that differs with both values and tells the user to choose a new
tag (a new experiment directory) or to remove the old one. A directory that already holds
files but no record (made by hand or by an older recipe) is adopted with a warning.
"""

import hashlib
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

RECORD = "experiment.yaml"
#: keys written for the reader only
NOT_COMPARED = ("config_file",)
_ABSENT = object()


class ExperimentChanged(ValueError):
    """An experiment directory was started with other settings than the ones given now."""


def fingerprint(path: str) -> str:
    """``<bytes> bytes, sha256 <hex>`` of a file's content, or of a directory's files (their
    relative names and contents, in name order)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    digest, size = hashlib.sha256(), 0
    if os.path.isdir(path):
        files = sorted(os.path.relpath(os.path.join(root, name), path)
                       for root, _, names in os.walk(path) for name in names)
    else:
        files = [None]
    for rel in files:
        file = path if rel is None else os.path.join(path, rel)
        if rel is not None:
            digest.update(f"{rel}\0".encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return f"{size} bytes, sha256 {digest.hexdigest()}"


def describe(config_file: Optional[str] = None, args: str = "", inputs: Optional[Mapping[str, str]] = None,
             options: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The record of an experiment: ``config_file``'s parsed content, the extra options
    string, every input path with its :func:`fingerprint`, other options (strings)."""
    config = None
    if config_file is not None:
        with open(config_file, encoding="utf-8") as f:
            try:
                config = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise ValueError(f"{config_file} is not valid YAML: {exc}") from exc
    record = {
        "config_file": config_file,
        "config": config if config is not None else {},
        "args": " ".join(args.split()),
        "inputs": {name: {"path": path, "fingerprint": fingerprint(path)} for name, path in (inputs or {}).items()},
        "options": {name: str(value) for name, value in (options or {}).items()},
    }
    # as it reads back from the file, so that a fresh record and a stored one compare alike
    return yaml.safe_load(yaml.safe_dump(record, allow_unicode=True, sort_keys=False))


def differences(old: Any, new: Any, prefix: str = "") -> List[Tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf where ``old`` and ``new``
    differ (nested mappings are followed; a missing key is :data:`_ABSENT`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            if not prefix and key in NOT_COMPARED:
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            found += differences(old.get(key, _ABSENT), new.get(key, _ABSENT), name)
        return found
    return [] if old == new else [(prefix, old, new)]


def _show(value: Any, limit: int = 100) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[:-4].strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_experiment(exp_dir: str, record: Dict[str, Any], tag_option: Optional[str] = None) -> str:
    """Compare ``record`` (:func:`describe`) with ``<exp_dir>/experiment.yaml``: write it
    when there is none (``exp_dir`` is created), do nothing when they agree, raise
    :class:`ExperimentChanged` naming every differing key otherwise. Returns ``"new"``,
    ``"adopted"`` (files but no record) or ``"same"``."""
    path = os.path.join(exp_dir, RECORD)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            stored = yaml.safe_load(f) or {}
        found = differences(stored, record)
        if not found:
            return "same"
        lines = [f"  {key}: {_show(old)} -> {_show(new)}" for key, old, new in found]
        new_tag = f"pass a new --{tag_option}" if tag_option else "choose another experiment directory"
        raise ExperimentChanged(
            f"{exp_dir} was started with other settings than the ones given now ({path}); "
            f"{len(found)} setting(s) differ, recorded -> now:\n" + "\n".join(lines) + "\n"
            f"To run with the new settings, {new_tag} (a new experiment directory), "
            f"or remove {exp_dir} to redo it.")
    status = "new"
    if os.path.isdir(exp_dir) and os.listdir(exp_dir):
        logging.warning(f"{exp_dir} holds files but no record of the settings it was started with: "
                        f"assuming the current ones and recording them in {path}")
        status = "adopted"
    os.makedirs(exp_dir, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(record, f, allow_unicode=True, sort_keys=False)
    os.replace(tmp, path)
    return status
