import torch

from espnet_s3net.masks.extraction import extract_language, lth_masks, taylor_importance

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
    cfg = {"sparsity": 0.5, "scope": "global"}
    a = extract_language("random", Linear(w), _params, [], cfg, torch.device("cpu"), seed=5)
    b = extract_language("random", Linear(w), _params, [], cfg, torch.device("cpu"), seed=5)
    assert torch.equal(a[NAME], b[NAME])
