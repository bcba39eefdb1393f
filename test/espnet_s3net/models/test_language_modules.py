"""Language adapters and gates on xlsr_tiny: identity at the start, activation and errors,
per-language gradients and optimizer steps, LayerDrop, masks with modules."""

import pytest
import torch

from espnet_s3net.masks.language_masker import find_maskers
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pruning import prunable_parameters, random_masks
from espnet_s3net.models.language_modules import LanguageAdapters, LanguageGates, build_language_modules
from espnet_s3net.models.pretrain_model import XLSRPretrainModel, build_xlsr
from espnet_s3net.train.language_data import LanguageConditioned, language_followers

LANGS = ["es", "fr"]
ADAPTER = {"type": "adapter", "languages": LANGS, "bottleneck": 8}
GATING = {"type": "gating", "languages": LANGS}
SPEECH = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
LENGTHS = torch.tensor([8000, 6400])


def _pair(conf, **xlsr):
    """(plain model, the same weights with language modules ``conf``)."""
    torch.manual_seed(0)
    plain = XLSRPretrainModel({"name": "xlsr_tiny", **xlsr})
    with_modules = XLSRPretrainModel({"name": "xlsr_tiny", **xlsr}, language_modules=conf)
    missing, unexpected = with_modules.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("xlsr.language_modules.") for k in missing)
    return plain, with_modules


def _perturb(modules, seed=0):
    """Random values for every language module parameter (zero-init ``up`` would leave the
    rest of an adapter without gradient in a first step)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in modules.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=generator))


def _encode(model):
    states, frames, layers = model.xlsr.encode(SPEECH, LENGTHS)
    return states, layers


@pytest.mark.parametrize("conf", [ADAPTER, GATING], ids=["adapter", "gating"])
def test_new_modules_leave_the_model_as_it_was(conf):
    plain, model = _pair(conf)
    plain.eval(), model.eval()
    for lang in LANGS:
        model.xlsr.language_modules.activate(lang)
        with torch.no_grad():
            expected, _ = _encode(plain)
            states, _ = _encode(model)
            for a, b in zip(expected, states):
                assert torch.equal(a, b)
            mask = torch.zeros(2, 24, dtype=torch.bool)
            mask[:, 3:9] = True
            n = int(mask.sum())
            negatives = torch.randint(0, n, (n, 5), generator=torch.Generator().manual_seed(1))
            torch.manual_seed(2)
            out_plain = plain.xlsr.forward_pretrain(SPEECH, LENGTHS, mask, negatives)
            torch.manual_seed(2)
            out = model.xlsr.forward_pretrain(SPEECH, LENGTHS, mask, negatives)
        assert torch.equal(out_plain.loss, out.loss)


def test_layout_and_configuration():
    model = XLSRPretrainModel({"name": "xlsr_tiny"}, language_modules={**ADAPTER, "layers": [2]})
    modules = model.xlsr.language_modules
    assert isinstance(modules, LanguageAdapters) and isinstance(modules, LanguageConditioned)
    assert modules in language_followers(model) and modules.layers == (2,)
    assert "xlsr.language_modules.adapters.fr.0.up.weight" in model.state_dict()
    assert modules.conf() == {"type": "adapter", "languages": LANGS, "layers": [2], "bottleneck": 8,
                              "activation": "relu", "layer_norm": True}
    gates = build_language_modules({"type": "gating", "languages": "es, fr it"}, dim=64, num_layers=2)
    assert isinstance(gates, LanguageGates) and gates.languages == ("es", "fr", "it")
    assert gates.conf() == {"type": "gating", "languages": ["es", "fr", "it"]}
    assert torch.equal(gates.gate("it"), torch.ones(2, 64))
    errors = [
        ({"type": "lora", "languages": LANGS}, "type must be one of adapter, gating"),
        ({"type": "gating", "languages": LANGS, "bottleneck": 3}, r"unknown option\(s\) \['bottleneck'\]"),
        ({"type": "adapter"}, "needs languages"),
        ({"type": "adapter", "languages": []}, "non-empty list"),
        ({"type": "adapter", "languages": ["es", "es"]}, "repeat"),
        ({"type": "adapter", "languages": ["e.s"]}, "without '.'"),
        ({"type": "adapter", "languages": LANGS, "layers": [0]}, "1-based"),
        ({"type": "adapter", "languages": LANGS, "activation": "tanh"}, "activation"),
        ({"type": "adapter", "languages": LANGS, "bottleneck": 0}, "bottleneck"),
        ("adapter", "must be a mapping"),
    ]
    for conf, message in errors:
        with pytest.raises(ValueError, match=message):
            build_language_modules(conf, dim=64, num_layers=2)


@pytest.mark.parametrize("conf", [ADAPTER, GATING], ids=["adapter", "gating"])
def test_activate_deactivate_and_errors(conf):
    plain, model = _pair(conf)
    modules = model.xlsr.language_modules
    name = type(modules).__name__
    with pytest.raises(RuntimeError, match=f"{name}: .* no language is active"):
        _encode(model)
    with pytest.raises(ValueError, match=f"{name}: no {modules.noun} for language 'de'.* es, fr"):
        modules.activate("de")
    _perturb(modules)
    modules.activate("es")
    es, _ = _encode(model)
    modules.activate("fr")
    fr, _ = _encode(model)
    assert not torch.allclose(es[-1], fr[-1])
    modules.deactivate()
    with pytest.raises(RuntimeError, match="no language is active"):
        _encode(model)
    modules.missing = "dense"   # what decoding with missing="dense" sets: the shared model alone
    modules.activate("de")
    torch.testing.assert_close(_encode(model)[0][-1], _encode(plain)[0][-1], rtol=0, atol=0)


def _step(model, lang, optimizer, set_to_none=True):
    model.xlsr.language_modules.activate(lang)
    optimizer.zero_grad(set_to_none=set_to_none)
    states, _ = _encode(model)
    states[-1].pow(2).mean().backward()
    optimizer.step()


@pytest.mark.parametrize("conf", [ADAPTER, GATING], ids=["adapter", "gating"])
def test_only_the_active_language_trains(conf):
    _, model = _pair(conf)
    modules = model.xlsr.language_modules
    _perturb(modules)
    es, fr = modules.language_parameters("es"), modules.language_parameters("fr")
    before = {id(p): p.detach().clone() for p in es + fr}
    _step(model, "es", torch.optim.SGD(model.parameters(), lr=0.1))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in es)
    assert all(p.grad is None for p in fr)
    assert all(not torch.equal(p, before[id(p)]) for p in es)
    assert all(torch.equal(p, before[id(p)]) for p in fr)   # bit-identical

    # Adam with weight decay: fr has moments from its own step, yet es steps leave it as it is
    # (its grad is None: the optimizer skips it) ...
    adam = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    _step(model, "fr", adam)
    kept = [p.detach().clone() for p in fr]
    for _ in range(2):
        _step(model, "es", adam)
    assert all(torch.equal(p, k) for p, k in zip(fr, kept))
    # ... while grads zeroed instead of set to None let the stale moments move it
    _step(model, "fr", adam)
    kept = [p.detach().clone() for p in fr]
    _step(model, "es", adam, set_to_none=False)
    assert all(not torch.equal(p, k) for p, k in zip(fr, kept))


def test_layerdrop_skips_the_module_of_a_dropped_layer():
    _, model = _pair(ADAPTER, num_layers=4, layer_drop=0.5)
    modules = model.xlsr.language_modules
    _perturb(modules)
    modules.activate("es")
    model.train()
    called = []
    handle = modules.register_forward_pre_hook(lambda module, args: called.append(args[1]))
    for seed in range(20):
        called.clear()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        states, layers = _encode(model)
        if 1 < len(layers) < 5:
            break
    else:
        pytest.fail("no seed dropped some but not all layers")
    handle.remove()
    assert called == layers[1:]
    states[-1].sum().backward()
    for layer in range(1, 5):
        grads = [p.grad for p in modules.adapters["es"][layer - 1].parameters()]
        assert all((g is not None) == (layer in layers) for g in grads)
    assert modules.unused_parameters_reason() and model.xlsr.unused_parameters_reason()


def test_masks_and_language_modules_compose(tmp_path):
    torch.manual_seed(0)
    plain = XLSRPretrainModel({"name": "xlsr_tiny"})
    params = prunable_parameters(plain.xlsr)
    SubnetMasks.from_dense({lang: random_masks(params, 0.5, "layerwise", i) for i, lang in enumerate(LANGS)},
                           {}).save(str(tmp_path / "masks.pt"))
    xlsr = build_xlsr({"name": "xlsr_tiny"}, mask_file=str(tmp_path / "masks.pt"), language_modules=GATING)
    followers = language_followers(xlsr)
    assert find_maskers(xlsr)[0] in followers and xlsr.language_modules in followers
    _perturb(xlsr.language_modules)
    for follower in followers:
        follower.activate("fr")
    states, _, _ = xlsr.encode(SPEECH, LENGTHS)
    states[-1].sum().backward()
    assert xlsr.language_modules.gates["fr"].grad is not None and xlsr.language_modules.gates["es"].grad is None
    q = xlsr.encoder.transformer.layers[0].attention.q_proj
    assert torch.equal(q.weight.grad, q.weight.grad * q.lang_mask.unpacked())  # the sub-network's gradient only
