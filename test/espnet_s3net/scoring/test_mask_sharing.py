"""Mask sharing per layer for RESULTS.md: IoU from the packed bits equals the dense computation."""

import numpy as np
import pytest
import torch

from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.report import iou_by_layer, iou_matrix, layer_groups, plot_iou_grid


def _masks(seed=0):
    gen = torch.Generator().manual_seed(seed)
    # sizes that are not multiples of 8: layers start and end inside a byte of the packed bits
    shapes = {"encoder.layers.0.fc1.weight": (13, 7), "encoder.layers.0.attn.q.weight": (5, 3),
              "encoder.layers.1.fc1.weight": (1, 1), "encoder.layers.1.attn.q.weight": (9, 11),
              "final_proj.weight": (3, 5), "encoder.layers.10.fc1.weight": (17, 2)}
    dense = {lang: {n: torch.rand(s, generator=gen) < p for n, s in shapes.items()}
             for lang, p in (("es", 0.2), ("fr", 0.5), ("it", 0.9), ("ky", 0.0))}
    return SubnetMasks.from_dense(dense, {"method": "lth"})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_from_packed_bits_equals_the_dense_computation(seed):
    masks = _masks(seed)
    groups, langs, iou = iou_by_layer(masks)
    assert groups == ["layer0", "layer1", "layer10", "other", "all"] and langs == ["es", "fr", "it", "ky"]
    dense = {lang: masks.dense(lang) for lang in langs}
    for group, names in list(layer_groups(masks.names).items()) + [("all", masks.names)]:
        flat = {lang: torch.cat([dense[lang][n].reshape(-1) for n in names]) for lang in langs}
        assert np.allclose(iou[groups.index(group)], iou_matrix(flat, langs)), group
    # by hand: ky keeps nothing, so it shares nothing with a language that keeps something
    assert iou[-1][3, 3] == 1.0 and iou[-1][0, 3] == 0.0


def test_iou_grid_picture(tmp_path):
    groups, langs, iou = iou_by_layer(_masks())
    plot_iou_grid(groups, langs, iou, "sharing", str(tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
