"""RESULTS.md: one row per model, one column per language, High / Low / Avg, #params.

High = the ``n_high`` evaluated languages with the most XLSR-10 pre-training hours (as in
the paper: five), Low = the others, Avg = all; each is the mean of the per-language rates.
"""

import os
from statistics import mean
from typing import Dict, List, Optional, Sequence

import torch

from espnet_s3net.languages import high_resource
from espnet_s3net.scoring.sclite import read_error_rate


def count_parameters(model_file: str) -> int:
    """Floating-point parameters of a checkpoint (buffers such as counters excluded)."""
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    return sum(v.numel() for k, v in state.items() if v.is_floating_point() and not k.endswith("num_updates"))


def collect(exp_dir: str, langs: Sequence[str], score_name: str) -> Dict[str, float]:
    """Per-language error rates of one experiment (``decode_test_<lang>/<score_name>/result.txt``)."""
    rates = {}
    for lang in langs:
        path = os.path.join(exp_dir, f"decode_test_{lang}", score_name, "result.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist (run decoding and scoring first)")
        rates[lang] = read_error_rate(path)
    return rates


def results_table(rows: Dict[str, Dict[str, float]], params: Dict[str, int], langs: Sequence[str],
                  high: Optional[List[str]] = None, metric: str = "PER") -> str:
    """Markdown table of ``rows`` (model -> language -> %)."""
    high = list(high) if high else high_resource(langs)
    low = [lang for lang in langs if lang not in high]
    header = ["model", "#params", *langs, "High", "Low", "Avg"]
    lines = [f"{metric} (%) per language; High: {' '.join(high)}; Low: {' '.join(low)}", "",
             "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for model, rates in rows.items():
        groups = [f"{mean(rates[x] for x in ls):.1f}" if ls else "-" for ls in (high, low, list(langs))]
        cells = [model, f"{params[model] / 1e6:.2f}M", *(f"{rates[x]:.1f}" for x in langs), *groups]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
