"""The recipe's DistilXLSR experiment (``s3net.sh --experiment distilxlsr``): its source language,
evaluation languages and arms, checked before any stage runs, and the checks and data
directories of its stage 8.

DistilXLSR (Interspeech 2023) distils a cross-lingual teacher into a half-size student on the
speech of *one* language whose phoneme segments are shuffled, initialising the student's
layers from every other teacher layer ("layer jumping"); the student is then fine-tuned on
other languages. The experiment's arms, all fine-tuned with the same ASR config, data (every
language of ``--langs`` but the source), updates and seeds:

- ``teacher``: the starting model itself (the control);
- ``distilxlsr``: layer jumping, shuffled-phoneme speech;
- ``distil_first_k``: the same student initialised from the teacher's first layers (no layer
  jumping), shuffled-phoneme speech;
- ``distil_unshuffled``: layer jumping, the same utterances unshuffled.

The three students share the distillation config (``--distill_config``) and differ only in
``distill_conf.init`` and the training data (:data:`ARMS`).

Source language: ``--distill_source_lang``, by default the language of ``--langs`` with the
most XLSR-10 pre-training hours. The paper distils on English (LibriSpeech), the language with
the most data; English is not a language of this toolkit, and the choice must be known before
any stage runs (it names the data and experiment directories), so the static XLSR-10 hours
stand for "the most data" (:func:`source_language`).

:func:`plan` prints, for the recipe to read::

    source <lang>
    langs <lang> ...            (the evaluation languages: every other one)
    arm <name> <init> <data>    (data: - for the teacher, shuffled or unshuffled)
"""

import argparse
import os
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

#: the control arm: the starting model fine-tuned as the students are
TEACHER = "teacher"
#: arm -> (distill_conf.init, distillation data); the teacher is not distilled
ARMS: Dict[str, Tuple[str, str]] = {
    TEACHER: ("-", "-"),
    "distilxlsr": ("layer_jump", "shuffled"),
    "distil_first_k": ("first_k", "shuffled"),
    "distil_unshuffled": ("layer_jump", "unshuffled"),
}
#: how RESULTS_distilxlsr.md describes each arm
ARM_DESCRIPTIONS: Dict[str, str] = {
    TEACHER: "the teacher (the starting model)",
    "distilxlsr": "layer jumping, shuffled phonemes",
    "distil_first_k": "first k layers (no layer jumping), shuffled phonemes",
    "distil_unshuffled": "layer jumping, unshuffled speech",
}


def source_language(langs: Sequence[str], source: str = "") -> str:
    """The source language: ``source`` when given (it must be one of ``langs``), else the one
    of ``langs`` with the most XLSR-10 hours (ties by name); ``ValueError`` when there is no
    other language to fine-tune on."""
    from espnet_s3net.languages import check_languages, high_resource

    langs = check_languages(langs)
    if not langs:
        raise ValueError("no languages given (--langs)")
    if source:
        if source not in langs:
            raise ValueError(f"--distill_source_lang {source} is not one of --langs ({' '.join(langs)}); the "
                             "source language's data comes from the recipe's stages 1-4")
    else:
        source = high_resource(langs, 1)[0]
    if len(langs) < 2:
        raise ValueError(f"--langs has only the source language {source}: the students are fine-tuned on the "
                         "other languages, give at least one more")
    return source


def check_distill_config(path: str) -> None:
    """``path`` is a distillation config (``espnet_s3net.bin.distill_train``): it exists, is a
    YAML mapping, and its ``distill_conf`` (if any) leaves ``init`` to the arms."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"distill_config {path} does not exist")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a YAML mapping (a distill_train config)")
    conf = config.get("distill_conf") or {}
    if not isinstance(conf, dict):
        raise ValueError(f"{path}: distill_conf must be a mapping")


def plan(langs: Sequence[str], source: str, distill_config: str) -> List[str]:
    """The lines the recipe reads (module docstring); ``ValueError`` / ``FileNotFoundError``
    for bad input."""
    langs = list(langs)
    source = source_language(langs, source)
    check_distill_config(distill_config)
    lines = [f"source {source}", f"langs {' '.join(lang for lang in langs if lang != source)}"]
    return lines + [f"arm {name} {init} {data}" for name, (init, data) in ARMS.items()]


def _per_utt(data_dir: str, name: str) -> Dict[str, str]:
    from espnet_s3net.data.kaldi_dir import read_kaldi_map

    path = os.path.join(data_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing (run stages 3-4 first)")
    return read_kaldi_map(path)


def shufflable_utterances(data_dir: str, text: str = "text_phn") -> int:
    """Utterances of ``data_dir`` whose phoneme transcript has at least two phonemes (fewer
    leave nothing to shuffle)."""
    transcripts = _per_utt(data_dir, text)
    return sum(len(transcripts.get(utt, "").split()) >= 2 for utt in _per_utt(data_dir, "wav.scp"))


def check_source_set(data_dir: str, min_utts: int, text: str = "text_phn", shuffled: bool = False) -> int:
    """Stop with a clear message when ``data_dir`` (the source language's set, or with
    ``shuffled`` its shuffled copy) holds fewer than ``min_utts`` utterances to shuffle (or
    shuffled); returns how many it holds."""
    if min_utts < 1:
        raise ValueError(f"the minimum number of utterances must be >= 1, got {min_utts}")
    n = len(_per_utt(data_dir, "wav.scp")) if shuffled else shufflable_utterances(data_dir, text)
    if n < min_utts:
        if shuffled:
            what = (f"{data_dir} holds {n} shuffled utterance(s) (the others could not be aligned: see "
                    f"{os.path.join(data_dir, 'skipped.tsv')})")
        else:
            what = f"{data_dir} has {n} utterance(s) with at least 2 phonemes ({text})"
        raise ValueError(f"the source set is too small to shuffle: {what}; the distillation needs at least "
                         f"{min_utts} (--distill_min_utts). Choose a source language with more data "
                         "(--distill_source_lang) or lower --distill_min_utts")
    return n


def subset_like(data_dir: str, like_dir: str, out_dir: str) -> int:
    """Write into ``out_dir`` the utterances of ``data_dir`` that ``like_dir`` holds (its
    ``wav.scp``): the unshuffled copy of a shuffled set, the same utterances with the original
    audio. Returns their number."""
    from espnet_s3net.data.kaldi_dir import per_utt_files, read_kaldi_map, write_data_dir

    keep = set(_per_utt(like_dir, "wav.scp"))
    files = {name: {u: v for u, v in read_kaldi_map(os.path.join(data_dir, name)).items() if u in keep}
             for name in per_utt_files(data_dir)}
    missing = keep - set(files.get("wav.scp", {}))
    if missing:
        raise ValueError(f"{like_dir} holds {len(missing)} utterance(s) that {data_dir} does not, e.g. "
                         f"{sorted(missing)[0]}")
    write_data_dir(out_dir, files)
    return len(files["wav.scp"])


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The DistilXLSR experiment of the recipe "
                                     "(python -m espnet_s3net.bin.distilxlsr_options)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="source language, evaluation languages and arms")
    p.add_argument("--langs", required=True)
    p.add_argument("--source_lang", default="", help="empty: the language with the most XLSR-10 hours")
    p.add_argument("--distill_config", required=True)
    p = sub.add_parser("check_source", help="stop when a source set is too small to shuffle")
    p.add_argument("--data_dir", required=True)
    p.add_argument("--min_utts", type=int, required=True)
    p.add_argument("--text", default="text_phn")
    p.add_argument("--shuffled", action="store_true", help="the data dir is the shuffled copy")
    p = sub.add_parser("subset", help="the utterances of --data_dir that --like holds, into --out_dir")
    p.add_argument("--data_dir", required=True)
    p.add_argument("--like", required=True)
    p.add_argument("--out_dir", required=True)
    return parser


def run(args: argparse.Namespace) -> Optional[str]:
    """The output of one command of :func:`get_parser` (``None``: nothing to print)."""
    if args.command == "plan":
        return "\n".join(plan(args.langs.split(), args.source_lang, args.distill_config))
    if args.command == "check_source":
        return str(check_source_set(args.data_dir, args.min_utts, args.text, args.shuffled))
    return str(subset_like(args.data_dir, args.like, args.out_dir))
