import pytest
import torch

from espnet_s3net.masks.pruning import (
    check_pattern,
    magnitude_masks,
    masks_from_scores,
    nm_violation,
    parse_pattern,
    prunable_parameters,
    random_masks,
    select_lowest,
)
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


@pytest.mark.parametrize("highest", [False, True])
def test_selection_is_a_stable_sort_prefix(highest):
    gen = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 5, (200,), generator=gen).float()  # many ties at every boundary
    order = torch.sort(scores, descending=highest, stable=True).indices
    for k in (0, 1, 37, 100, 199, 200):
        expected = torch.zeros(200, dtype=torch.bool)
        expected[order[:k]] = True
        assert torch.equal(select_lowest(scores, k, highest), expected), k


@pytest.mark.gpu
@pytest.mark.parametrize("highest", [False, True])
def test_selection_on_the_gpu_is_the_cpu_selection(highest):
    if not torch.cuda.is_available():
        pytest.fail("no CUDA device: run the gpu tests on a machine with one")
    gen = torch.Generator().manual_seed(4)
    scores = torch.randint(0, 1000, (3_000_001,), generator=gen).float()  # ties at every boundary
    for k in (1, 1_234_567, 3_000_000):
        assert torch.equal(select_lowest(scores.cuda(), k, highest).cpu(), select_lowest(scores, k, highest)), k


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="1 of 3 scores are NaN"):
        select_lowest(torch.tensor([0.1, float("nan"), 0.3]), 1)


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


@pytest.mark.parametrize("pattern", ["2:4", "1:4", "3:8", "1:2"])
@pytest.mark.parametrize("seed", range(3))
def test_nm_masks_keep_exactly_the_n_highest_of_every_group(pattern, seed):
    n, m = parse_pattern(pattern)
    gen = torch.Generator().manual_seed(seed)
    scores = {"a": torch.rand(5, 3 * m, generator=gen), "b": torch.randn(2, 4, 2 * m, generator=gen)}
    masks = masks_from_scores(scores, 1 - n / m, "layerwise", pattern)
    for name, s in scores.items():
        keep, groups = masks[name].reshape(-1, m), s.reshape(-1, m)
        assert masks[name].shape == s.shape and nm_violation(masks[name], n, m) is None
        assert (keep.sum(1) == n).all()
        kept_min = torch.where(keep, groups, torch.inf).min(1).values
        pruned_max = torch.where(keep, -torch.inf, groups).max(1).values
        assert (kept_min >= pruned_max).all(), name


def test_nm_ties_by_position_and_the_scope_does_not_matter():
    keep = masks_from_scores({"w": torch.ones(2, 8)}, 0.5, "layerwise", "2:4")["w"]
    assert keep.tolist() == [[False, False, True, True] * 2] * 2
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(4, 8, generator=gen), "b": torch.rand(3, 16, generator=gen) + 0.5}
    layerwise = masks_from_scores(scores, 0.5, "layerwise", "2:4")
    global_ = masks_from_scores(scores, 0.5, "global", "2:4")
    assert all(torch.equal(layerwise[n], global_[n]) for n in scores)


def test_random_nm_masks_are_nm_and_seeded():
    params = {"a": torch.zeros(6, 8), "b": torch.zeros(3, 12)}
    one, two = (random_masks(params, 0.75, "global", 3, "1:4") for _ in range(2))
    assert all(torch.equal(one[n], two[n]) and nm_violation(one[n], 1, 4) is None for n in params)
    assert not torch.equal(one["a"], random_masks(params, 0.75, "global", 4, "1:4")["a"])


def test_nm_violation_names_the_first_bad_group():
    mask = torch.tensor([[True, False, True, False, True, True, False, False],
                         [True, True, False, False, True, True, True, False]])
    assert nm_violation(mask, 2, 4) == "row 1, input columns 4..7 keep 3"
    assert nm_violation(mask[:1], 2, 4) is None


def test_bad_patterns_are_clear_errors():
    assert parse_pattern("unstructured") is None and parse_pattern("2:4") == (2, 4)
    for bad in ("4:4", "0:4", "5:4"):
        with pytest.raises(ValueError, match=f"pattern {bad}: n and m must be positive integers with n < m"):
            parse_pattern(bad)
    with pytest.raises(ValueError, match=r"pattern must be 'unstructured' or 'n:m' \(e.g. '2:4'\), got '2/4'$"):
        parse_pattern("2/4")
    with pytest.raises(ValueError, match=r"got 124 \(quote it in YAML, pattern: \"2:4\"; unquoted, YAML reads 2:4 "
                                         r"as the base-60 number 124\)"):
        parse_pattern(124)
    shapes = {"a": (4, 8), "b": (3, 6)}
    with pytest.raises(ValueError, match=r"pattern 2:4 does not fit tensor b of shape \(3, 6\): its input size 6 "
                                         r"is not a multiple of 4"):
        check_pattern("2:4", shapes)
    assert check_pattern("1:2", shapes, sparsity=0.5) == (1, 2)
    with pytest.raises(ValueError, match="sparsity 0.3 contradicts pattern 2:4: keeping 2 of every 4 weights is "
                                         "sparsity 1 - 2/4 = 0.5"):
        masks_from_scores({"a": torch.rand(4, 8)}, 0.3, "layerwise", "2:4")
    with pytest.raises(ValueError, match="is sparsity 1 - 1/3 = 0.666667"):
        check_pattern("1:3", {}, sparsity=0.5)
