"""Read a Common Voice release (any schema generation) into per-split utterance records.

A release directory holds ``<locale>/{train,dev,test,validated}.tsv`` and
``<locale>/clips/*.mp3``. Columns are found by header name: old releases have
``client_id path sentence up_votes down_votes age gender accent``, newer ones add
``sentence_id sentence_domain accents variant locale segment``; only
``client_id``, ``path`` and ``sentence`` are needed.

Every row that cannot be used becomes a :class:`Skip`; nothing is dropped silently.
"""

import csv
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_s3net.data.kaldi_dir import Skip, combine_data_dirs, write_data_dir
from espnet_s3net.languages import check_languages
from espnet_s3net.text.normalize import normalize_sentence

SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
HELD_OUT_SPEAKER = "speaker is in dev/test"


@dataclass
class Utterance:
    """One clip of a split. ``utt_id`` sorts by speaker (it starts with ``speaker``)."""

    utt_id: str
    speaker: str
    locale: str
    audio: str
    text: str
    phones: Optional[str] = None


def speaker_id(locale: str, client_id: str) -> str:
    return f"{locale}-{hashlib.sha1(client_id.encode('utf-8')).hexdigest()[:16]}"


def clip_stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def release_locales(cv_root: str) -> List[str]:
    """Locales of a release: sub-directories that hold a ``validated.tsv`` or ``train.tsv``."""
    if not os.path.isdir(cv_root):
        raise ValueError(f"Common Voice release directory {cv_root} does not exist")
    return sorted(
        name for name in os.listdir(cv_root)
        if any(os.path.isfile(os.path.join(cv_root, name, f"{s}.tsv")) for s in ("validated", "train"))
    )


def check_release(cv_root: str, locales: Sequence[str]) -> None:
    """Error naming the path when the release has no tsv files, or listing its locales
    when a requested locale is missing."""
    available = release_locales(cv_root)
    if not available:
        raise ValueError(f"{cv_root} holds no Common Voice tsv files (<locale>/train.tsv, validated.tsv)")
    missing = [loc for loc in locales if loc not in available]
    if missing:
        raise ValueError(f"locale(s) {', '.join(missing)} not in the release {cv_root}; "
                         f"it contains: {', '.join(available)}")


def read_tsv(path: str) -> Tuple[List[Dict[str, str]], List[Skip]]:
    """Rows of a Common Voice tsv as dicts keyed by header name, and the skipped rows.

    A row whose number of fields differs from the header's is skipped with its line.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist")
    rows, skips = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty (no header line)")
        absent = [c for c in REQUIRED_COLUMNS if c not in header]
        if absent:
            raise ValueError(f"{path}: header lacks column(s) {', '.join(absent)}; header: {header}")
        for lineno, fields in enumerate(reader, 2):
            if not fields:
                continue
            if len(fields) != len(header):
                skips.append(Skip(f"{path}:{lineno}", "wrong number of fields",
                                  f"row has {len(fields)} fields, header has {len(header)}"))
                continue
            rows.append(dict(zip(header, fields)))
    return rows, skips


def read_clip_durations(locale_dir: str) -> Dict[str, float]:
    """Clip -> seconds from ``clip_durations.tsv`` (``clip<TAB>duration[ms]``) if present."""
    path = os.path.join(locale_dir, "clip_durations.tsv")
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader, None)
        for fields in reader:
            if len(fields) >= 2:
                out[fields[0]] = float(fields[1]) / 1000.0
    return out


def _utterances(rows: List[Dict[str, str]], locale: str, clips_dir: str,
                phones: Optional[Dict[str, str]] = None) -> Tuple[List[Utterance], List[Skip]]:
    """Turn tsv rows into utterances; skip missing/empty clips and unusable sentences."""
    out, skips, seen = [], [], set()
    for row in rows:
        path = row["path"]
        audio = os.path.join(clips_dir, path)
        if path in seen:
            skips.append(Skip(path, "duplicate clip path"))
            continue
        seen.add(path)
        if not os.path.isfile(audio):
            skips.append(Skip(path, "missing clip file"))
            continue
        if os.path.getsize(audio) == 0:
            skips.append(Skip(path, "zero-byte clip"))
            continue
        text, reason = normalize_sentence(row["sentence"], locale)
        if text is None:
            skips.append(Skip(path, reason))
            continue
        spk = speaker_id(locale, row["client_id"])
        utt_phones = phones.get(clip_stem(path)) if phones else None
        out.append(Utterance(f"{spk}-{clip_stem(path)}", spk, locale, os.path.abspath(audio), text, utt_phones))
    return out, skips


def _cap_hours(utts: List[Utterance], durations: Dict[str, float], max_hours: float) -> List[Utterance]:
    """Deterministic subset of at most ``max_hours`` (clips ordered by a hash of their id)."""
    def seconds(u: Utterance) -> float:
        name = os.path.basename(u.audio)
        if name not in durations:
            import soundfile

            durations[name] = soundfile.info(u.audio).duration
        return durations[name]

    kept, total = [], 0.0
    for utt in sorted(utts, key=lambda u: hashlib.sha1(u.utt_id.encode()).hexdigest()):
        length = seconds(utt)
        if total + length > max_hours * 3600:
            continue
        kept.append(utt)
        total += length
    return kept


def _validated_train(locale_dir: str, locale: str, dev_test: Dict[str, List[Dict[str, str]]]
                     ) -> Tuple[List[Dict[str, str]], List[Skip]]:
    """Rows of ``validated.tsv`` for train: the dev and test clips are left out, and so is every
    row of a dev or test speaker (Common Voice's splits are speaker-disjoint); the latter are skips."""
    rows, skips = read_tsv(os.path.join(locale_dir, "validated.tsv"))
    clips = {r["path"] for split_rows in dev_test.values() for r in split_rows}
    speaker_split = {r["client_id"]: split for split, split_rows in dev_test.items() for r in split_rows}
    rest = [r for r in rows if r["path"] not in clips]
    train = [r for r in rest if r["client_id"] not in speaker_split]
    skips += [Skip(r["path"], HELD_OUT_SPEAKER,
                   f"speaker {speaker_id(locale, r['client_id'])} is in {speaker_split[r['client_id']]}")
              for r in rest if r["client_id"] in speaker_split]
    logging.info(f"{locale}: train from validated.tsv: {len(rows)} rows, {len(rows) - len(rest)} are dev/test "
                 f"clips, {len(rest) - len(train)} more are by dev/test speakers ({HELD_OUT_SPEAKER!r}), "
                 f"{len(train)} left")
    return train, skips


def _read_split_list(path: str) -> Dict[str, Optional[str]]:
    """``clip [phones...]`` lines -> {clip stem: phones or None}."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            clip, _, phones = line.strip().partition(" ")
            if clip:
                out[clip_stem(clip)] = phones.strip() or None
    return out


def prepare_locale(
    cv_root: str,
    locale: str,
    train_from: str = "train",
    max_train_hours: Optional[float] = None,
    split_list_dir: Optional[str] = None,
) -> Dict[str, Tuple[List[Utterance], List[Skip]]]:
    """Utterances and skips of the train/dev/test splits of one locale.

    Args:
        train_from: ``"train"`` (the release's split) or ``"validated"`` (validated
            minus the dev and test clips, ESPnet's Common Voice convention, and minus
            every clip of a dev or test speaker).
        max_train_hours: cap on train hours (deterministic subset).
        split_list_dir: fixed lists ``<dir>/<locale>/{train,dev,test}.txt`` of clip ids
            with optional phone transcripts; clips are taken from ``validated.tsv``.
    """
    if train_from not in ("train", "validated"):
        raise ValueError(f"train_from must be 'train' or 'validated', got {train_from!r}")
    locale_dir = os.path.join(cv_root, locale)
    clips_dir = os.path.join(locale_dir, "clips")
    result = {}
    if split_list_dir is not None:
        rows, bad = read_tsv(os.path.join(locale_dir, "validated.tsv"))
        by_stem = {clip_stem(r["path"]): r for r in rows}
        for split in SPLITS:
            listed = _read_split_list(os.path.join(split_list_dir, locale, f"{split}.txt"))
            skips = list(bad) if split == "train" else []
            skips += [Skip(clip, "listed clip not in validated.tsv") for clip in listed if clip not in by_stem]
            utts, more = _utterances([by_stem[c] for c in listed if c in by_stem], locale, clips_dir,
                                     {c: p for c, p in listed.items() if p})
            result[split] = (utts, skips + more)
    else:
        tables = {split: read_tsv(os.path.join(locale_dir, f"{split}.tsv")) for split in ("dev", "test")}
        if train_from == "validated":
            tables["train"] = _validated_train(locale_dir, locale, {s: tables[s][0] for s in ("dev", "test")})
        else:
            tables["train"] = read_tsv(os.path.join(locale_dir, "train.tsv"))
        for split in SPLITS:
            rows, bad = tables[split]
            utts, skips = _utterances(rows, locale, clips_dir)
            result[split] = (utts, bad + skips)
    if max_train_hours is not None:
        utts, skips = result["train"]
        kept = _cap_hours(utts, read_clip_durations(locale_dir), max_train_hours)
        logging.info(f"{locale}: train capped at {max_train_hours} h: {len(kept)} of {len(utts)} clips")
        result["train"] = (kept, skips)
    return result


def _write_split(data_dir: str, name: str, utts, skips) -> None:
    """One Kaldi-style data dir of a split's utterances (and its skips), with a log line."""
    files = {
        "wav.scp": {u.utt_id: u.audio for u in utts},
        "text": {u.utt_id: u.text for u in utts},
        "utt2spk": {u.utt_id: u.speaker for u in utts},
        "utt2lang": {u.utt_id: u.locale for u in utts},
    }
    if any(u.phones for u in utts):
        files["text_phn_list"] = {u.utt_id: u.phones for u in utts if u.phones}
    write_data_dir(os.path.join(data_dir, name), files, skips)
    counts = Counter(skip.reason for skip in skips)
    detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))
    logging.info(f"{name}: {len(utts)} utterances, {len(skips)} skipped" + (f" ({detail})" if detail else ""))


def prepare_release(cv_root: str, langs, data_dir: str, train_from: str, max_train_hours,
                    split_list_dir) -> None:
    """``<data_dir>/{train,dev,test}_<locale>`` and ``{train,dev}_multi`` of a release (see
    ``espnet_s3net.bin.prepare_cv``): a clip in more than one split stays in dev/test only."""
    check_languages(langs)
    check_release(cv_root, langs)
    for locale in langs:
        splits = prepare_locale(cv_root, locale, train_from, max_train_hours, split_list_dir)
        held_out = {u.audio for split in ("dev", "test") for u in splits[split][0]}
        train, train_skips = splits["train"]
        overlap = [u for u in train if u.audio in held_out]
        splits["train"] = ([u for u in train if u.audio not in held_out],
                           train_skips + [Skip(os.path.basename(u.audio), "duplicate clip path (also in dev/test)")
                                          for u in overlap])
        for split in SPLITS:
            utts, skips = splits[split]
            if not utts:
                raise ValueError(f"{locale} {split}: no usable utterance ({len(skips)} skipped)")
            _write_split(data_dir, f"{split}_{locale}", utts, skips)
    for split in ("train", "dev"):
        combine_data_dirs(os.path.join(data_dir, f"{split}_multi"),
                          [os.path.join(data_dir, f"{split}_{loc}") for loc in langs])
