"""Kaldi-style data directories: read, write (sorted, atomic), drop, combine, validate.

Per-utterance files (``wav.scp``, ``text``, ``text_*``, ``utt2*``) map an utterance id to a
value, one line each, sorted by id in byte order (``LC_ALL=C``). ``utt2lang`` holds the
language id of each utterance (written once here; it travels with every batch as the data
input ``utt2lang,lang,text``). ``spk2utt`` is derived from ``utt2spk``. ``skipped.tsv``
(header ``item<TAB>reason<TAB>detail``) lists every dropped item with the kind of reason
(the same text for the same kind of problem, so that skips group) and the item's detail
(e.g. a library's error message, a duration).
"""

import csv
import os
from typing import Dict, Iterable, List, NamedTuple, Sequence, Tuple

DERIVED = {"spk2utt": "utt2spk"}
SKIPPED = "skipped.tsv"


class Skip(NamedTuple):
    """One dropped item: ``reason`` is the kind of problem, ``detail`` what is specific to the item."""

    item: str
    reason: str
    detail: str = ""


def _key(utt: str) -> bytes:
    return utt.encode("utf-8")


def read_kaldi_map(path: str) -> Dict[str, str]:
    """``{first token: rest of line}``; a line without a value maps to ``""``."""
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, _, value = line.partition(" ")
            if key in out:
                raise ValueError(f"{path}:{lineno}: duplicate key {key}")
            out[key] = value
    return out


def write_kaldi_map(path: str, mapping: Dict[str, str]) -> None:
    """Write ``mapping`` sorted by key (byte order), atomically."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for key in sorted(mapping, key=_key):
            f.write(f"{key} {mapping[key]}\n" if mapping[key] != "" else f"{key}\n")
    os.replace(tmp, path)


def per_utt_files(data_dir: str) -> List[str]:
    """Names of the per-utterance files present in ``data_dir``."""
    return sorted(
        name for name in os.listdir(data_dir)
        if (name in ("wav.scp", "text") or name.startswith(("text_", "utt2")))
        and not name.endswith((".tmp", ".done")) and ".tmp." not in name
        and os.path.isfile(os.path.join(data_dir, name))
    )


def write_derived(data_dir: str) -> None:
    """(Re)write ``spk2utt`` from ``utt2spk``."""
    for derived, source in DERIVED.items():
        src = os.path.join(data_dir, source)
        if not os.path.isfile(src):
            continue
        groups: Dict[str, List[str]] = {}
        for utt, value in read_kaldi_map(src).items():
            groups.setdefault(value, []).append(utt)
        write_kaldi_map(os.path.join(data_dir, derived),
                        {k: " ".join(sorted(v, key=_key)) for k, v in groups.items()})


def append_skipped(data_dir: str, rows: Iterable[Skip]) -> None:
    """Append ``rows`` to ``data_dir/skipped.tsv`` (created with its header)."""
    rows = list(rows)
    path = os.path.join(data_dir, SKIPPED)
    new = not os.path.isfile(path)
    with open(path, "a", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        if new:
            writer.writerow(Skip._fields)
        writer.writerows(rows)


def read_skip_rows(data_dir: str) -> List[Skip]:
    """Rows of ``data_dir/skipped.tsv`` (none if it is missing; a file without the
    ``detail`` column gives empty details)."""
    path = os.path.join(data_dir, SKIPPED)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [Skip(row["item"], row["reason"], row.get("detail") or "")
                for row in csv.DictReader(f, delimiter="\t")]


def read_skipped(data_dir: str) -> List[Tuple[str, str]]:
    """``(item, reason)`` of every row of ``data_dir/skipped.tsv``."""
    return [(row.item, row.reason) for row in read_skip_rows(data_dir)]


def write_data_dir(data_dir: str, files: Dict[str, Dict[str, str]],
                   skipped: Sequence[Skip] = ()) -> None:
    """Write per-utterance ``files`` (name -> mapping), the derived files and skips."""
    os.makedirs(data_dir, exist_ok=True)
    for name, mapping in files.items():
        write_kaldi_map(os.path.join(data_dir, name), mapping)
    write_derived(data_dir)
    skipped_path = os.path.join(data_dir, SKIPPED)
    if os.path.exists(skipped_path):
        os.remove(skipped_path)
    append_skipped(data_dir, skipped)


def drop_utterances(data_dir: str, drop: Dict[str, str]) -> None:
    """Remove the utterances ``drop`` (utt -> reason) from every per-utterance file,
    rewrite the derived files and record the drops in ``skipped.tsv``."""
    if not drop:
        return
    for name in per_utt_files(data_dir):
        path = os.path.join(data_dir, name)
        mapping = read_kaldi_map(path)
        write_kaldi_map(path, {k: v for k, v in mapping.items() if k not in drop})
    write_derived(data_dir)
    append_skipped(data_dir, [Skip(utt, drop[utt]) for utt in sorted(drop, key=_key)])


def combine_data_dirs(dst: str, srcs: Sequence[str]) -> None:
    """Union of ``srcs`` into ``dst`` (files present in every source; skips concatenated)."""
    if not srcs:
        raise ValueError("combine_data_dirs needs at least one source directory")
    names = set(per_utt_files(srcs[0]))
    for src in srcs[1:]:
        names &= set(per_utt_files(src))
    files: Dict[str, Dict[str, str]] = {name: {} for name in names}
    for src in srcs:
        for name in names:
            for key, value in read_kaldi_map(os.path.join(src, name)).items():
                if key in files[name]:
                    raise ValueError(f"utterance {key} occurs in more than one of {list(srcs)}")
                files[name][key] = value
    skipped = [row for src in srcs for row in read_skip_rows(src)]
    write_data_dir(dst, files, skipped)


def validate_data_dir(data_dir: str) -> None:
    """Raise ValueError naming the file and the first bad key when the per-utterance files
    are unsorted or do not hold the same utterances as ``wav.scp``."""
    reference_path = os.path.join(data_dir, "wav.scp")
    if not os.path.isfile(reference_path):
        raise ValueError(f"{reference_path} does not exist")
    reference = set(read_kaldi_map(reference_path))
    if not reference:
        raise ValueError(f"{data_dir} holds no utterances")
    for name in per_utt_files(data_dir):
        path = os.path.join(data_dir, name)
        keys = list(read_kaldi_map(path))
        ordered = sorted(keys, key=_key)
        if keys != ordered:
            first = next(a for a, b in zip(keys, ordered) if a != b)
            raise ValueError(f"{path} is not sorted (first out of place: {first})")
        if set(keys) != reference:
            diff = sorted(set(keys) ^ reference, key=_key)
            raise ValueError(f"{path} and wav.scp hold different utterances, first: {diff[0]}")
