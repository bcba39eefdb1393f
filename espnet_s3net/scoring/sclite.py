"""Error rates the ESPnet way: ``ref.trn``/``hyp.trn`` scored by sclite into ``result.txt``.

Units: ``word`` (space-separated tokens: for phone transcripts the words are phones, so the
word error rate is the phoneme error rate) or ``char`` (characters, a blank written as
``<space>``). Without sclite the same figures come from jiwer, with a warning, in a
``result.txt`` whose ``Sum/Avg`` (rates, %) and ``Sum`` (counts) lines have sclite's layout.

sclite is looked up on PATH, then at ``/usr/lib/sctk/bin/sclite`` (where Debian's sctk
installs it, off PATH).
"""

import logging
import os
import re
import shutil
import subprocess
from typing import Dict

SCLITE_FALLBACK = "/usr/lib/sctk/bin/sclite"
#: columns of sclite's summary rows: sentences, tokens, then correct, substituted, deleted,
#: inserted tokens, all errors and sentences with an error
COLUMNS = ("sentences", "tokens", "corr", "sub", "del", "ins", "err", "sent_err")


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
    refs = [to_units(ref[u], unit) for u in utts]
    hyps = [to_units(hyp.get(u, ""), unit) for u in utts]
    out = jiwer.process_words(refs, hyps)
    n = out.hits + out.substitutions + out.deletions
    counts = [out.hits, out.substitutions, out.deletions, out.insertions,
              out.substitutions + out.deletions + out.insertions, sum(r != h for r, h in zip(refs, hyps))]
    rates = [100.0 * x / max(1, n) for x in counts[:-1]] + [100.0 * counts[-1] / max(1, len(utts))]
    return ("computed with jiwer (sclite not found)\n"
            f"| Sum/Avg | {len(utts)} {n} | {' '.join(f'{x:.1f}' for x in rates)} |\n"
            f"| Sum | {len(utts)} {n} | {' '.join(str(x) for x in counts)} |\n")


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


def read_summary(result_txt: str, row: str = "Sum/Avg") -> Dict[str, float]:
    """A summary row of a sclite (or jiwer) result.txt by column (:data:`COLUMNS`): ``Sum/Avg``
    has the counts of sentences and tokens, then rates (%); ``Sum`` has counts only."""
    pattern = re.compile(rf"^\s*\|\s*{re.escape(row)}\s*\|(.*)\|\s*$")
    with open(result_txt, encoding="utf-8") as f:
        for line in f:
            match = pattern.match(line)
            if match:
                numbers = [float(x) for x in match.group(1).replace("|", " ").split()]
                if len(numbers) != len(COLUMNS):
                    raise ValueError(f"{result_txt}: {row} line has {len(numbers)} numbers, expected {len(COLUMNS)}")
                return dict(zip(COLUMNS, numbers))
    raise ValueError(f"{result_txt} has no {row} line")


def read_error_rate(result_txt: str) -> float:
    """The ``Err`` column (%) of the ``Sum/Avg`` line of a sclite (or jiwer) result.txt."""
    return read_summary(result_txt)["err"]
