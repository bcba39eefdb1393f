"""Mask report: realised sparsity, sharing between languages, kept-by-all/one/none.

Written next to the mask file ``<dir>/<stem>.pt``: ``<stem>_report.md`` and heatmaps of
the pairwise intersection-over-union of the languages' kept weights, one per layer
(``<stem>_iou_layer<i>.png``) and one over all prunable weights (``<stem>_iou_all.png``).
"""

import os
import re
from collections import OrderedDict
from typing import Dict, List

import numpy as np
import torch

from espnet_s3net.masks.mask_file import SubnetMasks

_LAYER = re.compile(r"layers\.(\d+)\.")


def layer_groups(names: List[str]) -> "OrderedDict[str, List[str]]":
    """Tensor names grouped by transformer layer (``layer<i>``; others under ``other``)."""
    groups: "OrderedDict[str, List[str]]" = OrderedDict()
    for name in names:
        match = _LAYER.search(name)
        groups.setdefault(f"layer{match.group(1)}" if match else "other", []).append(name)
    return groups


def iou_matrix(flat: Dict[str, torch.Tensor], langs: List[str]) -> np.ndarray:
    """Pairwise |m_a ∧ m_b| / |m_a ∨ m_b| of flat bool masks."""
    out = np.ones((len(langs), len(langs)))
    for i, a in enumerate(langs):
        for j, b in enumerate(langs[i + 1:], i + 1):
            union = (flat[a] | flat[b]).sum().item()
            out[i, j] = out[j, i] = (flat[a] & flat[b]).sum().item() / union if union else 1.0
    return out


def _heatmap(matrix: np.ndarray, langs: List[str], title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(langs), 1 + 0.45 * len(langs)))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(langs)), langs, rotation=90)
    ax.set_yticks(range(len(langs)), langs)
    for i in range(len(langs)):
        for j in range(len(langs)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] < 0.6 else "black")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(mask_path: str) -> str:
    """Write the markdown report and heatmaps next to ``mask_path``; return the report path."""
    masks = SubnetMasks.load(mask_path)
    langs = masks.languages
    stem = os.path.splitext(mask_path)[0]
    dense = {lang: masks.dense(lang) for lang in langs}
    groups = layer_groups(masks.names)
    meta = masks.meta
    lines = [f"# Sub-network masks: {os.path.basename(mask_path)}", "",
             f"method {meta.get('method')}, scope {meta.get('scope')}, target sparsity {meta.get('sparsity')}, "
             f"seed {meta.get('seed')}; {masks.numel} prunable weights in {len(masks.names)} tensors; "
             f"fingerprint `{masks.fingerprint[:16]}`", "",
             "## Realised sparsity (fraction pruned) per language and layer", "",
             "| language | " + " | ".join(groups) + " | all |", "|---|" + "---:|" * (len(groups) + 1)]
    for lang in langs:
        cells = []
        for names in groups.values():
            kept = sum(int(dense[lang][n].sum()) for n in names)
            total = sum(dense[lang][n].numel() for n in names)
            cells.append(f"{1 - kept / total:.3f}")
        kept_all = sum(int(m.sum()) for m in dense[lang].values())
        lines.append(f"| {lang} | " + " | ".join(cells) + f" | {1 - kept_all / masks.numel:.3f} |")
    lines += ["", "## Sharing between languages (mean pairwise IoU of kept weights)", "",
              "| layer | mean IoU | heatmap |", "|---|---:|---|"]
    pairs = np.triu_indices(len(langs), 1)
    for group, names in list(groups.items()) + [("all", masks.names)]:
        flat = {lang: torch.cat([dense[lang][n].reshape(-1) for n in names]) for lang in langs}
        matrix = iou_matrix(flat, langs)
        png = f"{stem}_iou_{group}.png"
        _heatmap(matrix, langs, f"IoU of kept weights ({group})", png)
        mean = matrix[pairs].mean() if len(langs) > 1 else 1.0
        lines.append(f"| {group} | {mean:.3f} | ![{group}]({os.path.basename(png)}) |")
    counts = torch.stack([masks.flat(lang) for lang in langs]).sum(0)
    n = masks.numel
    lines += ["", "## Kept by how many languages", "",
              f"- all {len(langs)} languages: {(counts == len(langs)).sum().item() / n:.4f}",
              f"- exactly one language: {(counts == 1).sum().item() / n:.4f}",
              f"- no language (never used): {(counts == 0).sum().item() / n:.4f}", ""]
    path = f"{stem}_report.md"
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
