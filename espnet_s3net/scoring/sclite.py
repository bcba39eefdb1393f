"""Error rates the ESPnet way: ``ref.trn``/``hyp.trn`` scored by sclite into ``result.txt``.

Units: ``word`` (space-separated tokens: for phone transcripts the words are phones, so the
word error rate is the phoneme error rate) or ``char`` (characters, a blank written as
``<space>``). Without sclite the same figures come from jiwer, with a warning, in a
``result.txt`` whose ``Sum/Avg`` (rates, %) and ``Sum`` (counts) lines have sclite's layout.

Either way ``utt_errors`` (:data:`UTT_ERRORS`) gets one line per utterance,
``<utt> <errors> <ref_len>`` (errors = substitutions + deletions + insertions of the
utterance's alignment, ref_len = its reference tokens), sorted by id: what the statistics of
:mod:`espnet_s3net.scoring.statistics` resample. Its sums are the ``Sum`` line's ``err`` and
``tokens``. sclite's and jiwer's alignments minimise different costs (sclite weighs a
substitution 4, an insertion or deletion 3; jiwer each 1), so they can split an utterance's
errors differently between substitutions, deletions and insertions, but not, in the cases
checked, the number of errors.

sclite is looked up on PATH, then at ``/usr/lib/sctk/bin/sclite`` (where Debian's sctk
installs it, off PATH).
"""

import logging
import os
import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import numpy as np

SCLITE_FALLBACK = "/usr/lib/sctk/bin/sclite"
#: columns of sclite's summary rows: sentences, tokens, then correct, substituted, deleted,
#: inserted tokens, all errors and sentences with an error
COLUMNS = ("sentences", "tokens", "corr", "sub", "del", "ins", "err", "sent_err")
#: the per-utterance file written next to result.txt
UTT_ERRORS = "utt_errors"
_SCLITE_ID = re.compile(r"^id: \((.*)\)\s*$")
# sclite prints utterance ids in lower case (ASCII letters only)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SCLITE_SCORES = re.compile(r"^Scores: \(#C #S #D #I\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


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


def _jiwer_result(ref: Dict[str, str], hyp: Dict[str, str], unit: str) -> Tuple[str, Dict[str, Tuple[int, int]]]:
    """result.txt's summary lines and ``{utt: (errors, ref_len)}``, computed with jiwer."""
    import jiwer

    utts = sorted(ref)
    refs = [to_units(ref[u], unit) for u in utts]
    hyps = [to_units(hyp.get(u, ""), unit) for u in utts]
    out = jiwer.process_words(refs, hyps)
    per_utt = {}
    for utt, chunks, ref_tokens in zip(utts, out.alignments, out.references):
        errors = 0
        for chunk in chunks:
            if chunk.type in ("substitute", "delete"):
                errors += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "insert":
                errors += chunk.hyp_end_idx - chunk.hyp_start_idx
        per_utt[utt] = (errors, len(ref_tokens))
    n = out.hits + out.substitutions + out.deletions
    counts = [out.hits, out.substitutions, out.deletions, out.insertions,
              out.substitutions + out.deletions + out.insertions, sum(r != h for r, h in zip(refs, hyps))]
    rates = [100.0 * x / max(1, n) for x in counts[:-1]] + [100.0 * counts[-1] / max(1, len(utts))]
    return ("computed with jiwer (sclite not found)\n"
            f"| Sum/Avg | {len(utts)} {n} | {' '.join(f'{x:.1f}' for x in rates)} |\n"
            f"| Sum | {len(utts)} {n} | {' '.join(str(x) for x in counts)} |\n"), per_utt


def _run_sclite(sclite: str, ref_trn: str, hyp_trn: str) -> str:
    return subprocess.run([sclite, "-r", ref_trn, "trn", "-h", hyp_trn, "trn", "-i", "rm", "-o", "all", "stdout"],
                          capture_output=True, text=True, check=True).stdout


def parse_sclite_utterances(output: str) -> Dict[str, Tuple[int, int]]:
    """``{id as sclite prints it: (errors, ref_len)}`` from the alignments of ``-o all`` output
    (``id: (...)`` followed by ``Scores: (#C #S #D #I) c s d i``)."""
    per_utt: Dict[str, Tuple[int, int]] = {}
    current = None
    for line in output.splitlines():
        match = _SCLITE_ID.match(line)
        if match:
            current = match.group(1)
            continue
        match = _SCLITE_SCORES.match(line)
        if match and current is not None:
            corr, sub, dele, ins = (int(x) for x in match.groups())
            per_utt[current] = (sub + dele + ins, corr + sub + dele)
            current = None
    return per_utt


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _sclite_utterances(output: str, ref: Dict[str, str]) -> Dict[str, Tuple[int, int]]:
    """Per-utterance counts of a sclite run under the ids of ``ref`` (sclite prints them in lower case)."""
    parsed = parse_sclite_utterances(output)
    by_printed = {_ascii_lower(u): u for u in ref}
    if set(parsed) != set(by_printed):
        missing = sorted(set(by_printed) - set(parsed))
        raise ValueError(f"sclite's output has no alignment of {len(missing)} utterance(s), "
                         f"e.g. {by_printed[missing[0]] if missing else sorted(parsed)[0]}")
    return {by_printed[printed]: counts for printed, counts in parsed.items()}


def write_utt_errors(path: str, per_utt: Dict[str, Tuple[int, int]]) -> None:
    """``<utt> <errors> <ref_len>`` per line, sorted by id."""
    with open(path, "w", encoding="utf-8") as f:
        for utt in sorted(per_utt):
            errors, ref_len = per_utt[utt]
            f.write(f"{utt} {errors} {ref_len}\n")


def read_utt_errors(path: str) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """``(utts, errors, ref_len)`` of a :data:`UTT_ERRORS` file, sorted by utterance id."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist (score with espnet_s3net.bin.score, which writes it)")
    utts, errors, ref_len = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<utt> <errors> <ref_len>', got {line.strip()!r}")
            utts.append(fields[0])
            errors.append(int(fields[1]))
            ref_len.append(int(fields[2]))
    if len(set(utts)) != len(utts):
        raise ValueError(f"{path} lists an utterance more than once")
    order = sorted(range(len(utts)), key=utts.__getitem__)
    return ([utts[i] for i in order], np.array(errors, dtype=np.int64)[order].reshape(-1),
            np.array(ref_len, dtype=np.int64)[order].reshape(-1))


def score(ref: Dict[str, str], hyp: Dict[str, str], out_dir: str, unit: str) -> float:
    """Write ref.trn, hyp.trn, result.txt and utt_errors into ``out_dir``; return the error rate (%)."""
    odd = sorted(u for u in ref if "(" in u or ")" in u)
    if odd:
        raise ValueError(f"utterance id {odd[0]!r} holds a parenthesis, which the trn format cannot hold "
                         f"({len(odd)} such id(s))")
    folded: Dict[str, str] = {}
    for utt in sorted(ref):
        other = folded.setdefault(_ascii_lower(utt), utt)
        if other != utt:
            raise ValueError(f"utterance ids {other!r} and {utt!r} differ only in case, "
                             "which sclite does not tell apart")
    missing = sorted(set(ref) - set(hyp))
    if missing:
        logging.warning(f"{len(missing)} utterances have no hypothesis (scored as empty), e.g. {missing[0]}")
    os.makedirs(out_dir, exist_ok=True)
    utt_errors = os.path.join(out_dir, UTT_ERRORS)
    if os.path.exists(utt_errors):  # of an earlier scoring: never left next to a new result.txt
        os.remove(utt_errors)
    ref_trn, hyp_trn = os.path.join(out_dir, "ref.trn"), os.path.join(out_dir, "hyp.trn")
    write_trn(ref_trn, ref, unit)
    write_trn(hyp_trn, {u: hyp.get(u, "") for u in ref}, unit)
    sclite = find_sclite()
    if sclite is not None:
        result = _run_sclite(sclite, ref_trn, hyp_trn)
        per_utt = _sclite_utterances(result, ref)
    else:
        logging.warning("sclite not found (install Debian package sctk): scoring with jiwer instead")
        result, per_utt = _jiwer_result(ref, hyp, unit)
    result_txt = os.path.join(out_dir, "result.txt")
    with open(result_txt, "w", encoding="utf-8") as f:
        f.write(result)
    totals = read_summary(result_txt, "Sum")
    summed = [sum(v[0] for v in per_utt.values()), sum(v[1] for v in per_utt.values())]
    if summed != [totals["err"], totals["tokens"]]:
        raise ValueError(f"per-utterance counts (errors {summed[0]}, tokens {summed[1]}) do not add up to the "
                         f"Sum line of {result_txt} ({totals['err']:.0f}, {totals['tokens']:.0f})")
    write_utt_errors(utt_errors, per_utt)
    return read_error_rate(result_txt)


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
