from pathlib import Path

import pytest
import torch

from espnet_s3net.masks.extraction import extract_language, lth_masks, taylor_importance
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import check_pattern, nm_masks, nm_violation, prunable_parameters
from espnet_s3net.models.pretrain_model import XLSRPretrainModel, find_xlsr

NAME = "encoder.transformer.layers.0.attention.q_proj.weight"


class Linear(torch.nn.Module):
    """y = x W^T with squared loss, in the ESPnet (loss, stats, weight) convention;
    W is named like a prunable XLSR tensor."""

    def __init__(self, w):
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.transformer = torch.nn.Module()
        layer = torch.nn.Module()
        layer.attention = torch.nn.Module()
        layer.attention.q_proj = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        self.encoder.transformer.layers = torch.nn.ModuleList([layer])
        with torch.no_grad():
            layer.attention.q_proj.weight.copy_(w)

    def weight(self):
        return self.encoder.transformer.layers[0].attention.q_proj.weight

    def forward(self, x, y):
        loss = (x @ self.weight().T - y).pow(2).sum()
        return loss, {}, 1


def _params(model):
    return {NAME: model.weight()}


def _batches():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(6, 4, generator=gen), torch.randn(6, 3, generator=gen)) for _ in range(3)]


def test_taylor_importance_is_g_theta_squared_in_closed_form():
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    model = Linear(w)
    batches = _batches()
    scores = taylor_importance(model, _params(model), batches, torch.device("cpu"))[NAME]
    # dL/dW of sum ||x W^T - y||^2 is 2 (x W^T - y)^T x, summed over the batches
    grad = sum(2 * (x @ w.T - y).T @ x for x, y in batches)
    torch.testing.assert_close(scores, (grad * w).pow(2))


def test_lth_prunes_the_trained_copy_and_leaves_the_start_untouched():
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    model = Linear(w)
    keep = lth_masks(model, [NAME], _params, _batches(), steps=30, lr=0.05, rounds=1, sparsity=0.5,
                     scope="layerwise", device=torch.device("cpu"))[NAME]
    assert torch.equal(model.weight().detach(), w)  # the starting model is not modified
    assert (~keep).sum() == 6
    magnitude_keep = w.abs() >= w.abs().flatten().sort().values[6]
    assert not torch.equal(keep, magnitude_keep)  # training changed which weights are large


def test_iterative_lth_reaches_the_target_and_same_seed_same_masks():
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    runs = [lth_masks(Linear(w), [NAME], _params, _batches(), steps=5, lr=0.05, rounds=3, sparsity=0.75,
                      scope="layerwise", device=torch.device("cpu"))[NAME] for _ in range(2)]
    assert (~runs[0]).sum() == 9 and torch.equal(runs[0], runs[1])
    cfg = {"sparsity": 0.5, "scope": "global", "pattern": "unstructured"}
    a = extract_language("random", Linear(w), _params, [], cfg, torch.device("cpu"), seed=5)
    b = extract_language("random", Linear(w), _params, [], cfg, torch.device("cpu"), seed=5)
    assert torch.equal(a[NAME], b[NAME])


class Drift(torch.nn.Module):
    """A loss linear in the prunable ``w`` (gradient ``-direction``, constant), so Adam moves
    each entry by exactly ``lr · sign(direction)`` per step (0 where the direction is 0).
    Non-prunable state that training changes too: a bias ``b`` (a parameter) and a floating
    buffer ``count`` (+1 per forward). ``record`` gets every forward's state_dict."""

    def __init__(self, w, direction, record=lambda state: None):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.b = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
        self.register_buffer("count", torch.zeros(()))
        self.direction = direction
        self.record = record

    def forward(self, speech, speech_lengths):
        self.record({k: v.detach().clone() for k, v in self.state_dict().items()})
        with torch.no_grad():
            self.count += 1.0
        loss = -(self.direction * self.w).sum() - self.b.sum() + 0.0 * speech.sum()
        return loss, {}, 1


# Adam, 3 steps of lr 0.1: the moving entries go 0.3 towards sign(D); the others stay.
W0 = torch.tensor([[0.50, -0.45, 0.10, -0.05], [0.30, 0.20, -0.35, 0.02]])
D = torch.tensor([[0.0, 0.0, 1.0, -1.0], [0.0, -1.0, 1.0, 1.0]])
# trained:        [[0.50, -0.45, 0.40, -0.35], [0.30, -0.10, -0.05, 0.32]]
# |trained|, largest 4: the first row. Not the largest |W0| (0, 1, 4, 6), not the smallest
# |trained| (second row), not the largest movement (0.3 for all entries with D != 0).
KEEP_HALF = torch.tensor([[True, True, True, True], [False, False, False, False]])
LTH = dict(steps=3, lr=0.1, scope="layerwise", device=torch.device("cpu"))
TOY_BATCHES = [(torch.zeros(1, 4), torch.tensor([4]))]


def _w(model):
    return {"w": model.w}


def test_lth_keeps_the_largest_trained_magnitudes_in_closed_form():
    keep = lth_masks(Drift(W0, D), ["w"], _w, TOY_BATCHES, rounds=1, sparsity=0.5, **LTH)["w"]
    assert torch.equal(keep, KEEP_HALF)


def test_iterative_lth_rewinds_the_survivors_in_closed_form():
    # round 1 prunes half (target 1 - 0.25^(1/2)): the first row survives; rewound to W0 and
    # retrained it reaches [0.50, -0.45, 0.40, -0.35] again, so round 2 keeps columns 0, 1.
    # Without the rewind round 2 would start from round 1's weights and keep columns 2, 3
    # (0.70, -0.65).
    keep = lth_masks(Drift(W0, D), ["w"], _w, TOY_BATCHES, rounds=2, sparsity=0.75, **LTH)["w"]
    assert keep.tolist() == [[True, True, False, False], [False] * 4]


def test_iterative_lth_rewinds_every_tensor_at_each_round_start():
    seen = []
    model = Drift(W0, D, record=seen.append)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    lth_masks(model, ["w"], _w, TOY_BATCHES, rounds=3, sparsity=0.75, **LTH)
    assert len(seen) == 9
    for r, state in enumerate(seen[::3]):
        # the non-prunable parameter and the floating buffer are back at their start
        assert torch.equal(state["b"], start["b"]) and torch.equal(state["count"], start["count"]), r
        # the prunable tensor: its starting values under the mask of the previous round
        kept = state["w"] != 0
        assert torch.equal(state["w"], start["w"] * kept), r
        assert (~kept).sum() == round((1 - 0.25 ** (r / 3)) * 8), r
    assert not torch.equal(seen[2]["b"], start["b"])  # training did move them
    assert torch.equal(model.b.detach(), start["b"]) and model.count == 0  # the caller's copy untouched


def test_iterative_nm_lth_never_prunes_more_than_m_minus_n_of_a_group():
    # rounds 1-2 (targets 1 - 0.5^(1/3), 1 - 0.5^(2/3): 2 then 3 of 8 pruned): round 1 prunes
    # |-0.05|, |-0.10| (row 1); round 2's next lowest survivor is row 1's 0.30, which would
    # leave row 1 one weight, so it prunes row 0's -0.35 instead; the final 2:4 round then
    # prunes row 0's 0.40 and keeps what survived.
    seen = []
    keep = lth_masks(Drift(W0, D, record=seen.append), ["w"], _w, TOY_BATCHES, rounds=3, sparsity=0.5,
                     pattern="2:4", **LTH)["w"]
    assert [(state["w"] != 0).tolist() for state in seen[3::3]] == [
        [[True, True, True, True], [True, False, False, True]],
        [[True, True, True, False], [True, False, False, True]],
    ]
    assert keep.tolist() == [[True, True, False, False], [True, False, False, True]]


def _noisy_xlsr_tiny():
    """xlsr_tiny where train mode matters (dropout, LayerDrop, Gumbel noise, temperature)."""
    torch.manual_seed(0)
    return XLSRPretrainModel({"name": "xlsr_tiny", "dropout": 0.1, "attention_dropout": 0.1,
                              "dropout_input": 0.1, "dropout_features": 0.1, "layer_drop": 0.5})


def _speech_batches():
    gen = torch.Generator().manual_seed(0)
    return [(0.1 * torch.randn(2, 16000, generator=gen), torch.tensor([16000, 12000])) for _ in range(2)]


def _xlsr_params(model):
    return prunable_parameters(find_xlsr(model))


TE = {"sparsity": 0.5, "scope": "layerwise", "pattern": "unstructured"}


@pytest.mark.parametrize("training", [True, False])
def test_te_twice_on_the_same_model_gives_identical_masks(training):
    model = _noisy_xlsr_tiny().train(training)
    model.xlsr.encoder.train(not training)  # a mixed state, restored as it was
    modes = [m.training for m in model.modules()]
    runs = []
    for _ in range(2):
        torch.rand(3)  # the caller's RNG moves on between the runs
        rng = torch.get_rng_state()
        runs.append(extract_language("te", model, _xlsr_params, _speech_batches(), TE, torch.device("cpu"), seed=7))
        assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name
    assert [m.training for m in model.modules()] == modes
    assert int(model.xlsr.quantizer.num_updates) == 0  # no training forward happened


def test_te_scores_are_the_eval_mode_gradients():
    model = _noisy_xlsr_tiny()
    masks = extract_language("te", model.train(), _xlsr_params, _speech_batches(), TE, torch.device("cpu"), seed=7)
    reference = _noisy_xlsr_tiny().eval()
    with torch.random.fork_rng():
        torch.manual_seed(7)  # the same span masks and negatives
        scores = taylor_importance(reference, _xlsr_params(reference), _speech_batches(), torch.device("cpu"))
    for name, mask in masks.items():
        keep = scores[name].reshape(-1).sort(stable=True).indices[round(0.5 * mask.numel()):]
        assert torch.equal(mask.reshape(-1).nonzero().squeeze(1), keep.sort().values), name


def test_lth_on_xlsr_is_reproducible_and_leaves_the_model_alone():
    model = _noisy_xlsr_tiny()
    cfg = {**TE, "lth_steps": 2, "lth_lr": 1e-3, "lth_rounds": 2}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runs = [extract_language("lth", model, _xlsr_params, _speech_batches(), cfg, torch.device("cpu"), seed=7)
            for _ in range(2)]
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_extract_subnets_logs_an_eta_per_language_and_resumes(tmp_path, caplog):
    from espnet_s3net.masks.extraction import DEFAULTS, extract_subnets

    torch.manual_seed(0)
    model = XLSRPretrainModel({"name": "xlsr_tiny"})
    cfg = {**DEFAULTS, "method": "random"}
    out = str(tmp_path / "subnets" / "masks.pt")
    with caplog.at_level("INFO"):
        first = extract_subnets(model, ["es", "fr"], str(tmp_path), cfg, out, torch.device("cpu"), "/m/model.pth")
    lines = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == ["random extraction: 1/2 (50%)", "random extraction: 2/2 (100%)"]
    assert first.languages == ["es", "fr"] and first.meta["source_model"] == "/m/model.pth"
    caplog.clear()
    with caplog.at_level("INFO"):
        again = extract_subnets(model, ["fr"], str(tmp_path), cfg, out, torch.device("cpu"), "/m/model.pth")
    assert "fr: reusing" in caplog.text and "ETA" not in caplog.text
    alone = extract_subnets(model, ["fr"], str(tmp_path), cfg, str(tmp_path / "alone" / "masks.pt"),
                            torch.device("cpu"), "/m/model.pth")
    for name in first.names:  # reused as stored; extracted alone, the same masks
        assert torch.equal(again.dense("fr")[name], first.dense("fr")[name]), name
        assert torch.equal(alone.dense("fr")[name], first.dense("fr")[name]), name


NM = {**TE, "pattern": "2:4", "lth_steps": 2, "lth_lr": 1e-3, "lth_rounds": 2}


@pytest.mark.parametrize("method", ["te", "lth", "random"])
def test_nm_extraction_gives_nm_masks(method):
    model = _noisy_xlsr_tiny()
    masks = extract_language(method, model, _xlsr_params, _speech_batches(), NM, torch.device("cpu"), seed=7)
    assert set(masks) == set(_xlsr_params(model))
    for name, mask in masks.items():
        assert nm_violation(mask, 2, 4) is None, name
    if method == "te":  # the two highest (g θ)^2 of every group of 4 input weights
        with torch.random.fork_rng():
            torch.manual_seed(7)
            scores = taylor_importance(model.eval(), _xlsr_params(model), _speech_batches(), torch.device("cpu"))
        for name, keep in nm_masks(scores, 2, 4).items():
            assert torch.equal(masks[name], keep), name


def test_nm_extraction_bad_config_fails_before_any_pass(tmp_path):
    from espnet_s3net.masks.extraction import DEFAULTS, extract_subnets

    model = _noisy_xlsr_tiny()
    calls = []
    model.register_forward_pre_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match="sparsity 0.5 contradicts pattern 1:4: keeping 1 of every 4 weights is "
                                         "sparsity 1 - 1/4 = 0.75"):
        extract_language("te", model, _xlsr_params, _speech_batches(), {**NM, "pattern": "1:4"},
                         torch.device("cpu"), seed=7)
    with pytest.raises(ValueError, match=r"pattern 1:3 does not fit tensor encoder\.transformer\.layers\.0\."
                                         r"attention\.k_proj\.weight of shape \(64, 64\): its input size 64 is not"):
        extract_language("lth", model, _xlsr_params, _speech_batches(), {**NM, "pattern": "1:3", "sparsity": 2 / 3},
                         torch.device("cpu"), seed=7)
    assert not calls
    cfg = {**DEFAULTS, "method": "random", "pattern": "2:4"}
    out = str(tmp_path / "masks.pt")
    masks = extract_subnets(model, ["es"], str(tmp_path), cfg, out, torch.device("cpu"), "/m/model.pth")
    assert masks.meta["pattern"] == "2:4" and masks.meta["config"]["pattern"] == "2:4"
    assert SubnetMasks.load(out).pattern == "2:4"



def test_results_saved_before_the_pattern_key_are_reused(tmp_path, caplog):
    from espnet_s3net.masks.extraction import DEFAULTS, extract_subnets

    model = _noisy_xlsr_tiny()
    cfg = {**DEFAULTS, "method": "random"}
    out = str(tmp_path / "masks.pt")
    extract_subnets(model, ["es"], str(tmp_path), cfg, out, torch.device("cpu"), "/m/model.pth")
    tmp = tmp_path / "tmp" / "es.pt"
    saved = torch.load(tmp, weights_only=True)
    del saved["config"]["pattern"]
    torch.save(saved, tmp)
    with caplog.at_level("INFO"):
        extract_subnets(model, ["es"], str(tmp_path), cfg, out, torch.device("cpu"), "/m/model.pth")
    assert "es: reusing" in caplog.text
    with caplog.at_level("INFO"):
        extract_subnets(model, ["es"], str(tmp_path), {**cfg, "pattern": "2:4"}, out, torch.device("cpu"), "/m/m.pth")
    assert "random extraction (layerwise, sparsity 0.5, 2:4) of 1 language(s): es" in caplog.text


def test_recipe_extraction_configs_are_valid():
    from espnet_s3net.masks.extraction import load_config

    confs = sorted((Path(__file__).parents[3] / "egs2/commonvoice_s3net/ssl1/conf").glob("extract_*.yaml"))
    for conf in confs:
        cfg = load_config(str(conf))
        check_pattern(cfg["pattern"], {}, cfg["sparsity"])
    assert load_config(str(confs[0].with_name("extract_lth_2of4.yaml")))["pattern"] == "2:4"
