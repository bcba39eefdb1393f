"""Weights outside a language's sub-network are bit-identical after its steps."""

import pytest
import torch

from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
from espnet_s3net.train.language_masker import attach_masker, find_maskers

NAMES = ["encoder.transformer.layers.0.attention.q_proj.weight",
         "encoder.transformer.layers.0.feed_forward.intermediate_dense.weight"]


class Toy(torch.nn.Module):
    """Two prunable linears named like XLSR tensors, plus an unmasked head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layer = torch.nn.Module()
        layer.attention = torch.nn.Module()
        layer.attention.q_proj = torch.nn.Linear(6, 6)
        layer.feed_forward = torch.nn.Module()
        layer.feed_forward.intermediate_dense = torch.nn.Linear(6, 8)
        self.encoder = torch.nn.Module()
        self.encoder.transformer = torch.nn.Module()
        self.encoder.transformer.layers = torch.nn.ModuleList([layer])
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x):
        layer = self.encoder.transformer.layers[0]
        return self.head(torch.tanh(layer.feed_forward.intermediate_dense(torch.tanh(layer.attention.q_proj(x)))))


def _masks(model):
    gen = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    dense = {lang: {n: torch.rand(params[n].shape, generator=gen) < 0.5 for n in NAMES} for lang in ("es", "fr")}
    return SubnetMasks.from_dense(dense, {"source_fingerprint": parameter_fingerprint(model, NAMES)})


def _setup(make_optimizer):
    model = Toy()
    masks = _masks(model)
    masker = attach_masker(model, masks)
    optimizer = make_optimizer(model.parameters())
    masker.attach_optimizer(optimizer)
    return model, masks, masker, optimizer


def _steps(model, masker, optimizer, lang, n=3, clip=None, accum=1, autocast=False):
    gen = torch.Generator().manual_seed(7)
    for _ in range(n):
        masker.activate(lang)
        for _ in range(accum):
            x = torch.randn(4, 6, generator=gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(x).float().pow(2).mean()
            loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
    masker.deactivate()


OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw_wd": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("mode", ["plain", "clip", "accum", "bf16"])
def test_outside_mask_bit_identical_inside_changes(opt, mode):
    model, masks, masker, optimizer = _setup(OPTIMIZERS[opt])
    params = dict(model.named_parameters())
    # momentum from another language first, so optimizer state is non-zero everywhere
    _steps(model, masker, optimizer, "fr", n=2)
    before = {n: params[n].detach().clone() for n in NAMES}
    kwargs = {"plain": {}, "clip": {"clip": 1e-3}, "accum": {"accum": 3}, "bf16": {"autocast": True}}[mode]
    _steps(model, masker, optimizer, "es", **kwargs)
    es = masks.dense("es")
    for n in NAMES:
        outside, inside = ~es[n], es[n]
        assert torch.equal(params[n].detach()[outside], before[n][outside]), n
        assert not torch.equal(params[n].detach()[inside], before[n][inside]), n


def test_next_language_sees_the_values_left_behind():
    model, masks, masker, optimizer = _setup(OPTIMIZERS["adam"])
    params = dict(model.named_parameters())
    _steps(model, masker, optimizer, "es")
    after_es = {n: params[n].detach().clone() for n in NAMES}
    masker.activate("fr")
    fr = masks.dense("fr")
    for n in NAMES:
        assert torch.equal(params[n].detach(), after_es[n] * fr[n])
    masker.deactivate()
    for n in NAMES:
        assert torch.equal(params[n].detach(), after_es[n])


def test_clipping_sees_the_masked_gradient():
    model, masks, masker, _ = _setup(OPTIMIZERS["sgd_momentum"])
    masker.activate("es")
    model(torch.randn(4, 6)).pow(2).mean().backward()
    es = masks.dense("es")
    params = dict(model.named_parameters())
    for n in NAMES:
        assert not params[n].grad[~es[n]].any()
    masker.deactivate()


def test_state_dict_holds_dense_weights():
    model, _, masker, _ = _setup(OPTIMIZERS["adam"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masker.activate("es")
    state = model.state_dict()
    assert masker.active is None
    for k in before:
        assert torch.equal(state[k], before[k])


def test_language_switch_with_pending_gradients_is_refused():
    model, _, masker, _ = _setup(OPTIMIZERS["adam"])
    masker.activate("es")
    model(torch.randn(2, 6)).sum().backward()
    with pytest.raises(RuntimeError, match="from language es to language fr while gradients are pending"):
        masker.activate("fr")


def test_missing_language():
    model, _, masker, _ = _setup(OPTIMIZERS["adam"])
    with pytest.raises(ValueError, match="no sub-network mask for language 'it'; masks exist for: es, fr"):
        masker.activate("it")
    dense_model = Toy()
    dense_masker = attach_masker(dense_model, _masks(dense_model), missing="dense")
    before = [p.clone() for p in dense_model.parameters()]
    dense_masker.activate("it")
    assert all(torch.equal(a, b) for a, b in zip(before, dense_model.parameters()))
    assert find_maskers(dense_model) == [dense_masker]


def test_source_fingerprint():
    model, _, masker, optimizer = _setup(OPTIMIZERS["adam"])
    assert masker.source_fingerprint_matches(model)
    _steps(model, masker, optimizer, "es", n=1)
    assert not masker.source_fingerprint_matches(model)
