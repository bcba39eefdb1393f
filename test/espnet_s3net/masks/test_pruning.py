import pytest
import torch

from espnet_s3net.masks.pruning import magnitude_masks, masks_from_scores, prunable_parameters, random_masks
from espnet_s3net.models.xlsr import XLSRModel, get_config


@pytest.mark.parametrize("seed", range(5))
def test_magnitude_pruning_removes_exactly_the_lowest(seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(7, 13, generator=gen)
    keep = magnitude_masks({"w": w}, 0.4, "layerwise")["w"]
    assert (~keep).sum() == round(0.4 * w.numel())
    assert w.abs()[keep].min() >= w.abs()[~keep].max()


def test_ties_are_deterministic_by_position():
    keep = masks_from_scores({"w": torch.ones(10)}, 0.3, "layerwise")["w"]
    assert keep.tolist() == [False] * 3 + [True] * 7


def test_layerwise_exact_sparsity_per_tensor():
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(33, generator=gen), "b": torch.rand(4, 5, generator=gen) * 100}
    masks = masks_from_scores(scores, 0.25, "layerwise")
    assert (~masks["a"]).sum() == round(0.25 * 33) and (~masks["b"]).sum() == 5


def test_global_uses_one_threshold():
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(50, generator=gen), "b": torch.rand(50, generator=gen) + 0.5}
    masks = masks_from_scores(scores, 0.5, "global")
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    pruned = torch.cat([scores[n][~masks[n]] for n in scores])
    assert kept.min() >= pruned.max() and pruned.numel() == 50
    assert (~masks["a"]).sum() > (~masks["b"]).sum()  # the lower-scored tensor loses more


def test_random_control_same_sparsity_and_seeded():
    params = {"a": torch.zeros(40), "b": torch.zeros(3, 7)}
    one, two = random_masks(params, 0.5, "layerwise", 3), random_masks(params, 0.5, "layerwise", 3)
    assert all(torch.equal(one[n], two[n]) for n in params)
    assert (~one["a"]).sum() == 20 and (~one["b"]).sum() == round(0.5 * 21)
    assert not torch.equal(one["a"], random_masks(params, 0.5, "layerwise", 4)["a"])


def test_default_prunable_tensors_are_transformer_linears():
    names = list(prunable_parameters(XLSRModel(get_config("xlsr_tiny"))))
    assert len(names) == 2 * 6 and all(n.endswith(".weight") and ".layers." in n for n in names)
    assert not any("pos_conv" in n or "quantizer" in n or "feature_extractor" in n for n in names)
    with pytest.raises(ValueError, match="no parameter name matches"):
        prunable_parameters(torch.nn.Linear(2, 2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sparsity"):
        masks_from_scores({"a": torch.rand(3)}, 1.0, "layerwise")
    with pytest.raises(ValueError, match="scope"):
        masks_from_scores({"a": torch.rand(3)}, 0.5, "per_row")
