"""The data report: per language and split, utterances / hours / speakers, skips by
reason, and the token inventory (recipe stage 5)."""

import os
from collections import Counter
from typing import Dict, List, Optional, Sequence

from espnet_s3net.data.kaldi_dir import read_kaldi_map, read_skipped

SPLITS = ("train", "dev", "test")
SAMPLE_RATE = 16000


def skip_counts(set_dir: str, raw_set_dir: Optional[str] = None) -> Dict[str, int]:
    """Skipped items by reason of a dump dir and its raw data dir, each item once: stage 3
    copies the raw dir's skips into the dump dir, so a skip in both counts once."""
    rows = Counter(read_skipped(set_dir))
    if raw_set_dir is not None:
        rows |= Counter(read_skipped(raw_set_dir))
    counts: Counter = Counter()
    for (_, reason), n in rows.items():
        counts[reason] += n
    return dict(counts)


def split_stats(set_dir: str, raw_set_dir: Optional[str] = None) -> Dict:
    """Utterances, hours, speakers and skips of one dump dir (skips of the raw data dir too)."""
    lengths = read_kaldi_map(os.path.join(set_dir, "utt2num_samples"))
    speakers = set(read_kaldi_map(os.path.join(set_dir, "utt2spk")).values())
    return {
        "utterances": len(lengths),
        "hours": sum(int(n) for n in lengths.values()) / SAMPLE_RATE / 3600,
        "speakers": len(speakers),
        "skipped": skip_counts(set_dir, raw_set_dir),
    }


def phone_inventory(set_dir: str) -> List[str]:
    """Sorted distinct phones of ``text_phn`` (empty if the file is missing)."""
    path = os.path.join(set_dir, "text_phn")
    if not os.path.isfile(path):
        return []
    return sorted({p for phones in read_kaldi_map(path).values() for p in phones.split()})


def token_list_sizes(token_list_dir: str) -> Dict[str, int]:
    """Entries of every ``<type>/tokens.txt`` under ``token_list_dir``."""
    sizes = {}
    if os.path.isdir(token_list_dir):
        for name in sorted(os.listdir(token_list_dir)):
            path = os.path.join(token_list_dir, name, "tokens.txt")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    sizes[name] = sum(1 for _ in f)
    return sizes


def build_report(dump_dir: str, langs: Sequence[str], token_list_dir: str,
                 data_dir: Optional[str] = None) -> str:
    """The report as markdown."""
    lines = ["# Data report", "", f"Audio and transcripts from `{dump_dir}`.", "",
             "| language | split | utterances | hours | speakers | skipped |",
             "|---|---|---:|---:|---:|---|"]
    inventories = {}
    for lang in langs:
        for split in SPLITS:
            name = f"{split}_{lang}"
            set_dir = os.path.join(dump_dir, name)
            if not os.path.isdir(set_dir):
                raise FileNotFoundError(f"{set_dir} does not exist (run stages 1-4 for {lang})")
            raw = os.path.join(data_dir, name) if data_dir else None
            st = split_stats(set_dir, raw)
            skipped = ", ".join(f"{r}: {n}" for r, n in sorted(st["skipped"].items())) or "-"
            lines.append(f"| {lang} | {split} | {st['utterances']} | {st['hours']:.4f} | "
                         f"{st['speakers']} | {skipped} |")
        inventories[lang] = phone_inventory(os.path.join(dump_dir, f"train_{lang}"))
    lines += ["", f"Every skipped item, with its reason and detail: `{dump_dir}/<split>_<language>/skipped.tsv`.",
              "", "## Phone inventory (train)", "", "| language | phones | inventory |", "|---|---:|---|"]
    for lang, phones in inventories.items():
        lines.append(f"| {lang} | {len(phones)} | {' '.join(phones)} |")
    lines += ["", "## Token lists", "", "| token type | entries |", "|---|---:|"]
    for name, size in token_list_sizes(token_list_dir).items():
        lines.append(f"| {name} | {size} |")
    return "\n".join(lines) + "\n"
