"""Mask report: realised sparsity, sharing between languages, kept-by-all/one/none.

Written next to the mask file ``<dir>/<stem>.pt``: ``<stem>_report.md`` and heatmaps of
the pairwise intersection-over-union of the languages' kept weights, one per layer
(``<stem>_iou_layer<i>.png``) and one over all prunable weights (``<stem>_iou_all.png``).

:func:`iou_by_layer` computes the same matrices from the packed bits (population counts of
the AND of two languages' bytes, no mask unpacked), and :func:`plot_iou_grid` draws them as
one grid of small heatmaps, as RESULTS.md shows them (``espnet_s3net.bin.make_results --masks``).
"""

import os
import re
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

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


def _bit_ranges(masks: SubnetMasks, names: Sequence[str]) -> List[Tuple[int, int]]:
    """The flat bit ranges ``[start, end)`` of ``names`` in ``masks``' concatenation, adjacent ones merged."""
    starts, offset = {}, 0
    for name in masks.names:
        starts[name] = offset
        offset += masks.shapes[name].numel()
    ranges: List[Tuple[int, int]] = []
    for start, end in sorted((starts[n], starts[n] + masks.shapes[n].numel()) for n in names):
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        elif end > start:
            ranges.append((start, end))
    return ranges


def _range_bytes(packed: np.ndarray, start: int, end: int) -> np.ndarray:
    """The bytes of ``packed`` (``numpy.packbits`` order: first bit = most significant) that
    hold bits ``[start, end)``, with the other bits of the first and last byte cleared."""
    first, last = start // 8, (end - 1) // 8
    out = packed[first:last + 1].copy()
    out[0] &= np.uint8(0xFF >> (start - 8 * first))
    out[-1] &= np.uint8((0xFF << (8 * (last + 1) - end)) & 0xFF)
    return out


def iou_by_layer(masks: SubnetMasks) -> Tuple[List[str], List[str], np.ndarray]:
    """``(groups, languages, iou)``: the pairwise IoU ``|m_a ∧ m_b| / |m_a ∨ m_b|`` of the
    languages' kept weights in each transformer layer (:func:`layer_groups`) and over all
    prunable weights (last group, ``all``), layers in order, then ``other``; ``iou`` is
    (groups x languages x languages)."""
    langs = masks.languages
    by_layer = layer_groups(masks.names)
    order = sorted(by_layer, key=lambda g: (g == "other", int(g[5:]) if g != "other" else 0))
    groups = {g: by_layer[g] for g in order}
    names = list(groups) + ["all"]
    packed = {lang: masks.packed(lang).numpy() for lang in langs}
    out = np.ones((len(names), len(langs), len(langs)))
    total_inter = np.zeros((len(langs), len(langs)))
    for g, group in enumerate(groups.values()):
        inter = np.zeros((len(langs), len(langs)))
        for start, end in _bit_ranges(masks, group):
            chunk = [_range_bytes(packed[lang], start, end) for lang in langs]
            for i in range(len(langs)):
                for j in range(i, len(langs)):
                    inter[i, j] = inter[j, i] = inter[i, j] + int(np.bitwise_count(chunk[i] & chunk[j]).sum())
        out[g] = _iou_from_intersections(inter)
        total_inter += inter
    out[-1] = _iou_from_intersections(total_inter)
    return names, langs, out


def _iou_from_intersections(inter: np.ndarray) -> np.ndarray:
    """IoU from intersection counts (the diagonal holds each mask's size); an empty union: 1."""
    sizes = np.diag(inter)
    union = sizes[:, None] + sizes[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def plot_iou_grid(groups: Sequence[str], langs: Sequence[str], iou: np.ndarray, title: str, path: str) -> None:
    """One small heatmap per group (layer), in a grid, with a shared colour scale [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(6, len(groups))
    rows = -(-len(groups) // cols)
    side = 1.2 + 0.22 * len(langs)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols + 1, side * rows + 0.6), squeeze=False,
                             layout="constrained")
    pairs = np.triu_indices(len(langs), 1)
    image = None
    for ax, group, matrix in zip(axes.flat, groups, iou):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        mean = matrix[pairs].mean() if len(langs) > 1 else 1.0
        ax.set_title(f"{group} (mean {mean:.2f})", fontsize=8)
        ax.set_xticks(range(len(langs)), langs, rotation=90, fontsize=6)
        ax.set_yticks(range(len(langs)), langs, fontsize=6)
        if len(langs) <= 6:
            for i in range(len(langs)):
                for j in range(len(langs)):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5,
                            color="white" if matrix[i, j] < 0.6 else "black")
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.02)
    fig.savefig(path, dpi=90)
    plt.close(fig)


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
