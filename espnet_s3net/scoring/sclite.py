"""Error rates the ESPnet way: ``ref.trn``/``hyp.trn`` scored by sclite into ``result.txt``.

Units: ``word`` (space-separated tokens: for phone transcripts the words are phones, so the
word error rate is the phoneme error rate) or ``char`` (characters, a blank written as
``<space>``). Without sclite the same figures come from jiwer, with a warning, in a
``result.txt`` whose ``Sum/Avg`` line has sclite's layout.
"""

import logging
import os
import re
import shutil
import subprocess
from typing import Dict

SCLITE_FALLBACK = "/usr/lib/sctk/bin/sclite"


def to_units(text: str, unit: str) -> str:
    if unit == "word":
        return " ".join(text.split())
    if unit == "char":
        return " ".join("<space>" if ch == " " else ch for ch in " ".join(text.split()))
    raise ValueError(f"unit must be word or char, got {unit!r}")


def write_trn(path: str, texts: Dict[str, str], unit: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for utt in sorted(texts):
            f.write(f"{to_units(texts[utt], unit)} ({utt})\n")


def find_sclite():
    path = shutil.which("sclite")
    if path is None and os.access(SCLITE_FALLBACK, os.X_OK):
        path = SCLITE_FALLBACK
    return path


def _jiwer_result(ref: Dict[str, str], hyp: Dict[str, str], unit: str) -> str:
    import jiwer

    utts = sorted(ref)
    out = jiwer.process_words([to_units(ref[u], unit) for u in utts], [to_units(hyp.get(u, ""), unit) for u in utts])
    n = out.hits + out.substitutions + out.deletions
    pct = lambda x: 100.0 * x / max(1, n)  # noqa: E731
    sent_err = sum(1 for u in utts if to_units(ref[u], unit) != to_units(hyp.get(u, ""), unit))
    err = out.substitutions + out.deletions + out.insertions
    return ("computed with jiwer (sclite not found)\n"
            f"| Sum/Avg | {len(utts)} {n} | {pct(out.hits):.1f} {pct(out.substitutions):.1f} "
            f"{pct(out.deletions):.1f} {pct(out.insertions):.1f} {pct(err):.1f} "
            f"{100.0 * sent_err / max(1, len(utts)):.1f} |\n")


def score(ref: Dict[str, str], hyp: Dict[str, str], out_dir: str, unit: str) -> float:
    """Write ref.trn, hyp.trn and result.txt into ``out_dir``; return the error rate (%)."""
    missing = sorted(set(ref) - set(hyp))
    if missing:
        logging.warning(f"{len(missing)} utterances have no hypothesis (scored as empty), e.g. {missing[0]}")
    os.makedirs(out_dir, exist_ok=True)
    ref_trn, hyp_trn = os.path.join(out_dir, "ref.trn"), os.path.join(out_dir, "hyp.trn")
    write_trn(ref_trn, ref, unit)
    write_trn(hyp_trn, {u: hyp.get(u, "") for u in ref}, unit)
    sclite = find_sclite()
    if sclite is not None:
        result = subprocess.run([sclite, "-r", ref_trn, "trn", "-h", hyp_trn, "trn", "-i", "rm", "-o", "all", "stdout"],
                                capture_output=True, text=True, check=True).stdout
    else:
        logging.warning("sclite not found (install Debian package sctk): scoring with jiwer instead")
        result = _jiwer_result(ref, hyp, unit)
    with open(os.path.join(out_dir, "result.txt"), "w", encoding="utf-8") as f:
        f.write(result)
    return read_error_rate(os.path.join(out_dir, "result.txt"))


def read_error_rate(result_txt: str) -> float:
    """The ``Err`` column (%) of the ``Sum/Avg`` line of a sclite (or jiwer) result.txt."""
    with open(result_txt, encoding="utf-8") as f:
        for line in f:
            if "Sum/Avg" in line:
                fields = [x for x in re.split(r"[|\s]+", line) if x]
                numbers = [float(x) for x in fields[fields.index("Sum/Avg") + 1:]]
                return numbers[6]  # sentences, tokens, corr, sub, del, ins, ERR, s.err
    raise ValueError(f"{result_txt} has no Sum/Avg line")
