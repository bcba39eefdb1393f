"""The recipe's Distill-L2S experiment (``s3net.sh --experiment distill_l2s``): its arms, languages
and text teacher, checked before any stage runs.

Every arm fine-tunes the same starting model with the same ASR config (``model: distill_l2s``,
e.g. ``conf/asr_ctc_l2s_small.yaml``), data, updates and seed; the arms differ only in the
weight λ of the auxiliary loss (``--model_conf distill_l2s_conf.lambda=λ``):

- ``ctc``: plain CTC, λ = 0. Its loss and gradients are CTC's exactly (the teacher does not
  run and the projection gets no gradient), and it builds the same model as the other arms
  from the same seed (same parameters, same random stream), so the comparison isolates the loss;
- ``l2s``: CTC + the Distill-L2S loss with the config's λ; or, with a sweep
  (``--l2s_lambdas "0.1 1.0"``), one arm ``l2s_lambda<λ>`` per value.

Languages: the low-resource ones, every language of ``--langs`` but the High ones (the
recipe's ``--high_langs``, default the three with the most XLSR-10 hours, as RESULTS.md
groups them: :func:`espnet_s3net.languages.high_resource`). Each is fine-tuned alone, as the
paper fine-tunes XLSR "for each language".

Teacher: the recipe's self-trained masked-LM teacher (stage 8), or a directory the user gives
(``--l2s_teacher_dir``): a teacher of ``train_text_teacher`` (``teacher.yaml``) or a local
Hugging Face text encoder (``config.json``, XLM-R / InfoXLM).

:func:`plan` prints, for the recipe to read::

    low <lang> ...
    teacher <self_trained|huggingface> <dir or ->
    arm <name> <λ>
    ...
"""

import argparse
import math
import os
import re
from typing import List, Optional, Sequence

import yaml

#: the plain CTC arm (λ = 0), the control of the results
CONTROL_ARM = "ctc"
#: the arm with the config's λ (no sweep)
L2S_ARM = "l2s"
_NUMBER = re.compile(r"^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")


def parse_lambda(text: str, where: str) -> float:
    """A λ given as text: a finite number ≥ 0 (``ValueError`` otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: λ must be a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: λ must be a finite number >= 0, got {text!r}")
    return value


def config_lambda(asr_config: str) -> float:
    """The λ of ``asr_config`` (``model: distill_l2s``, ``model_conf.distill_l2s_conf.lambda``)."""
    if not os.path.isfile(asr_config):
        raise FileNotFoundError(f"asr_config {asr_config} does not exist")
    with open(asr_config, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict) or config.get("model") != "distill_l2s":
        raise ValueError(f"{asr_config} is not a Distill-L2S config (model: distill_l2s, e.g. "
                         "conf/asr_ctc_l2s_small.yaml): the experiment's arms differ only in its "
                         "model_conf.distill_l2s_conf.lambda")
    model_conf = config.get("model_conf") or {}
    conf = model_conf.get("distill_l2s_conf")
    if not isinstance(conf, dict):
        raise ValueError(f"{asr_config} has no model_conf.distill_l2s_conf block")
    if model_conf.get("ctc_weight", 0.5) == 0:
        raise ValueError(f"{asr_config}: model_conf.ctc_weight is 0; Distill-L2S needs a CTC branch")
    value = parse_lambda(str(conf.get("lambda", 1.0)), f"{asr_config} (model_conf.distill_l2s_conf.lambda)")
    return value


def teacher_type(teacher_dir: str) -> str:
    """``self_trained`` or ``huggingface`` for a teacher directory (``ValueError`` if neither)."""
    if not os.path.isdir(teacher_dir):
        raise ValueError(f"--l2s_teacher_dir {teacher_dir} does not exist (give a local Hugging Face text encoder "
                         "directory or a teacher of espnet_s3net.bin.train_text_teacher; nothing is downloaded)")
    if os.path.isfile(os.path.join(teacher_dir, "teacher.yaml")):
        return "self_trained"
    if os.path.isfile(os.path.join(teacher_dir, "config.json")):
        return "huggingface"
    raise ValueError(f"--l2s_teacher_dir {teacher_dir} is not a text teacher: no teacher.yaml (a teacher of "
                     "espnet_s3net.bin.train_text_teacher) and no config.json (a Hugging Face text encoder)")


def low_resource(langs: Sequence[str], high_langs: Sequence[str] = ()) -> List[str]:
    """The languages of ``langs`` that are not High (``high_langs``, default the three with the
    most XLSR-10 hours), in ``langs`` order; ``ValueError`` when none is left."""
    from espnet_s3net.languages import high_resource

    langs = list(langs)
    if not langs:
        raise ValueError("no languages given (--langs)")
    high = list(high_langs) if high_langs else high_resource(langs, 3)
    low = [lang for lang in langs if lang not in high]
    if not low:
        how = "--high_langs" if high_langs else "the default High: the 3 with the most XLSR-10 hours"
        raise ValueError(f"no low-resource language: every language of --langs ({' '.join(langs)}) is High "
                         f"({how}); the Distill-L2S experiment fine-tunes the others")
    return low


def arm_lambdas(asr_config: str, lambdas: str = "") -> List[tuple]:
    """``[(arm, λ text)]``: ``ctc`` with 0, then ``l2s`` with the config's λ, or one
    ``l2s_lambda<λ>`` per value of the sweep ``lambdas``."""
    base = config_lambda(asr_config)
    arms = [(CONTROL_ARM, "0")]
    values = lambdas.split()
    if not values:
        if base == 0:
            raise ValueError(f"{asr_config}: distill_l2s_conf.lambda is 0, which is the plain CTC arm; set it > 0 "
                             "(or give a sweep with --l2s_lambdas)")
        return arms + [(L2S_ARM, repr(base))]
    seen = set()
    for text in values:
        value = parse_lambda(text, "--l2s_lambdas")
        if not _NUMBER.match(text):
            raise ValueError(f"--l2s_lambdas: write λ as a plain decimal number (it names the arm), got {text!r}")
        if value == 0:
            raise ValueError("--l2s_lambdas: λ 0 is the plain CTC arm (ctc), which always runs; give values > 0")
        if value in seen:
            raise ValueError(f"--l2s_lambdas: λ {text} is given twice")
        seen.add(value)
        arms.append((f"{L2S_ARM}_lambda{text}", text))
    return arms


def plan(asr_config: str, lambdas: str, teacher_dir: Optional[str], langs: Sequence[str],
         high_langs: Sequence[str] = ()) -> List[str]:
    """The lines the recipe reads (module docstring); ``ValueError`` / ``FileNotFoundError`` for bad input."""
    low = low_resource(langs, high_langs)
    arms = arm_lambdas(asr_config, lambdas)
    teacher = ("self_trained", "-") if not teacher_dir else (teacher_type(teacher_dir), teacher_dir)
    return [f"low {' '.join(low)}", f"teacher {teacher[0]} {teacher[1]}"] + [f"arm {a} {v}" for a, v in arms]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The arms, low-resource languages and text teacher of the recipe's "
                                     "Distill-L2S experiment (python -m espnet_s3net.bin.l2s_options)")
    parser.add_argument("--asr_config", required=True, help="the ASR config (model: distill_l2s)")
    parser.add_argument("--lambdas", default="", help="optional sweep of λ values, one arm each")
    parser.add_argument("--teacher_dir", default="", help="a given teacher directory (empty: the self-trained one)")
    parser.add_argument("--langs", required=True)
    parser.add_argument("--high_langs", default="", help="High languages (empty: the top 3 by XLSR-10 hours)")
    return parser
