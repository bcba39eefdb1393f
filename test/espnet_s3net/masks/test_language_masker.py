"""Weights outside a language's sub-network are bit-identical after its steps."""

import pytest
import torch

from espnet_s3net.masks import language_masker, mask_kernels
from espnet_s3net.masks.language_masker import OPTIM_STATE_POLICIES, MaskedLinear, attach_masker, find_maskers
from espnet_s3net.masks.mask_file import PackedMask, SubnetMasks, pack_bits, parameter_fingerprint
from espnet_s3net.masks.pruning import nm_violation, prunable_parameters, random_masks

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


def _without_cpu_passes(monkeypatch):
    """The masker's other form, as on a GPU or without a C compiler: one byte per weight."""
    off = mask_kernels._Library()
    off.error = "disabled by the test"
    monkeypatch.setattr(mask_kernels, "_library", off)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("mode", ["plain", "clip", "accum", "bf16", "byte_masks"])
def test_outside_mask_bit_identical_inside_changes(opt, mode, monkeypatch):
    if mode == "byte_masks":
        _without_cpu_passes(monkeypatch)
    model, masks, masker, optimizer = _setup(OPTIMIZERS[opt])
    params = dict(model.named_parameters())
    # momentum from another language first, so optimizer state is non-zero everywhere
    _steps(model, masker, optimizer, "fr", n=2)
    before = {n: params[n].detach().clone() for n in NAMES}
    kwargs = {"clip": {"clip": 1e-3}, "accum": {"accum": 3}, "bf16": {"autocast": True}}.get(mode, {})
    _steps(model, masker, optimizer, "es", **kwargs)
    es = masks.dense("es")
    for n in NAMES:
        outside, inside = ~es[n], es[n]
        assert torch.equal(params[n].detach()[outside], before[n][outside]), n
        assert not torch.equal(params[n].detach()[inside], before[n][inside]), n


def _subnetwork(model, masks, lang):
    """A plain copy of ``model`` whose prunable weights are W ⊙ m^lang."""
    ref = Toy()
    ref.load_state_dict(model.state_dict())
    params = dict(ref.named_parameters())
    with torch.no_grad():
        for n, m in masks.dense(lang).items():
            params[n].mul_(m)
    return ref


def test_forward_is_the_subnetwork_after_steps_of_the_same_language():
    model, masks, masker, optimizer = _setup(OPTIMIZERS["adam"])
    _steps(model, masker, optimizer, "fr", n=2)
    masker.activate("es")
    x = torch.randn(5, 6)
    for _ in range(3):  # stale momentum from fr must not leak into es's forward
        model(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        assert torch.equal(model(x), _subnetwork(model, masks, "es")(x))


def test_next_language_sees_the_values_left_behind():
    model, masks, masker, optimizer = _setup(OPTIMIZERS["adam"])
    _steps(model, masker, optimizer, "es")
    x = torch.randn(5, 6)
    masker.activate("fr")
    assert torch.equal(model(x), _subnetwork(model, masks, "fr")(x))
    masker.deactivate()
    with pytest.raises(RuntimeError, match="no language is active"):  # never dense by accident
        model(x)
    reference = Toy()
    reference.load_state_dict(model.state_dict())  # the stored weights are the dense model
    assert not torch.equal(reference(x), _subnetwork(model, masks, "es")(x))


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("autocast", [False, True])
def test_masked_linear_gradients_match_the_masked_dense_layer(autocast, packed):
    torch.manual_seed(3)
    layer, ref = torch.nn.Linear(6, 5), torch.nn.Linear(6, 5)
    mask = (torch.rand(5, 6) < 0.5).to(torch.uint8)
    with torch.no_grad():
        ref.weight.copy_(layer.weight * mask)
        ref.bias.copy_(layer.bias)
    layer.__class__ = MaskedLinear
    layer.lang_mask = PackedMask(pack_bits(mask.reshape(-1).bool()), mask.shape) if packed else mask
    layer.scratch = torch.empty(5, 6)
    x = torch.randn(2, 3, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    for module, inputs in ((layer, x), (ref, x_ref)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = module(inputs)
        out.float().pow(2).sum().backward()
    tol = dict(rtol=2e-2, atol=2e-2) if autocast else dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)
    torch.testing.assert_close(layer.weight.grad, ref.weight.grad * mask, **tol)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad, **tol)
    assert not layer.weight.grad[mask == 0].any()


def test_backward_masks_the_weight_again_only_for_an_input_gradient(monkeypatch):
    calls = []
    monkeypatch.setattr(language_masker, "masked_weight",
                        lambda w, m, out: calls.append(1) or torch.mul(w, m, out=out))
    layer = torch.nn.Linear(6, 5)
    layer.__class__ = MaskedLinear
    layer.lang_mask, layer.scratch = torch.ones(5, 6, dtype=torch.uint8), torch.empty(5, 6)
    layer(torch.randn(2, 6)).sum().backward()  # the input needs no gradient
    assert len(calls) == 1
    layer(torch.randn(2, 6, requires_grad=True)).sum().backward()
    assert len(calls) == 3


@pytest.mark.parametrize("policy", ["shared", "frozen"])
def test_optimizer_state_policy(policy):
    model = Toy()
    masks = _masks(model)
    masker = attach_masker(model, masks, optim_state_policy=policy)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    masker.attach_optimizer(optimizer)
    _steps(model, masker, optimizer, "fr", n=2)
    params = dict(model.named_parameters())
    before = {n: {k: v.clone() for k, v in optimizer.state[params[n]].items() if k != "step"} for n in NAMES}
    _steps(model, masker, optimizer, "es", n=2)
    es = masks.dense("es")
    for n in NAMES:
        for key, old in before[n].items():
            new = optimizer.state[params[n]][key]
            outside_same = torch.equal(new[~es[n]], old[~es[n]])
            assert outside_same == (policy == "frozen"), (n, key)
            assert not torch.equal(new[es[n]], old[es[n]]), (n, key)



@pytest.mark.parametrize("policy", ["shared", "frozen"])
def test_chunked_step_is_the_masked_update_of_the_whole_model(policy, monkeypatch):
    """The prunable weights are stepped a chunk at a time (here one weight per chunk): the
    result is that of one optimizer step on the masked gradients with the weights (and, for
    ``frozen``, the optimizer state) outside the mask put back; hooks run once per update and
    the gradients are there after the step."""
    monkeypatch.setattr(language_masker, "RESTORE_CHUNK_BYTES", 64)
    model = Toy()
    masks = _masks(model)
    masker = attach_masker(model, masks, optim_state_policy=policy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    masker.attach_optimizer(optimizer)
    assert len(masker._chunks(optimizer)) == 0  # no gradients yet
    calls = []
    optimizer.register_step_post_hook(lambda *args: calls.append(1))
    ref = Toy()
    ref_optimizer = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1)
    ref_params = dict(ref.named_parameters())
    gen = torch.Generator().manual_seed(7)
    for lang in ("fr", "es", "es", "fr"):
        x = torch.randn(4, 6, generator=gen)
        masker.activate(lang)
        model(x).pow(2).mean().backward()
        assert len(masker._chunks(optimizer)) == len(NAMES)
        grads = [p.grad for p in model.parameters()]
        optimizer.step()
        assert all(p.grad is g for p, g in zip(model.parameters(), grads))
        optimizer.zero_grad()
        masker.deactivate()

        mask = masks.dense(lang)
        masked = {n: ref_params[n] * mask[n] for n in NAMES}
        torch.func.functional_call(ref, {**ref_params, **masked}, (x,)).pow(2).mean().backward()
        kept = {n: [ref_params[n].detach().clone()] for n in NAMES}
        if policy == "frozen":
            for n in NAMES:
                state = ref_optimizer.state.get(ref_params[n], {})
                kept[n] += [state[k].clone() for k in ("exp_avg", "exp_avg_sq") if k in state]
        ref_optimizer.step()
        ref_optimizer.zero_grad()
        with torch.no_grad():
            for n in NAMES:
                state = ref_optimizer.state[ref_params[n]]
                for tensor, old in zip([ref_params[n], state["exp_avg"], state["exp_avg_sq"]], kept[n]):
                    tensor[~mask[n]] = old[~mask[n]]
    assert calls == [1] * 4
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, ref_params[name], rtol=1e-6, atol=1e-7, msg=name)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(optimizer.state[p][key], ref_optimizer.state[ref_params[name]][key],
                                       rtol=1e-6, atol=1e-9, msg=f"{name} {key}")

def test_first_activation_builds_the_cpu_passes_before_a_forward(monkeypatch):
    calls = []
    monkeypatch.setattr(mask_kernels, "load_cpu_passes", lambda: calls.append("load"))
    model = Toy()
    masker = attach_masker(model, _masks(model))
    assert calls == []
    masker.activate("es")
    assert calls == ["load"]


def test_on_cpu_the_layers_read_the_bits_of_the_mask_file():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh(), torch.nn.Linear(4, 6))
    names = ["0.weight", "2.weight"]  # 32 and 24 weights: each starts on a whole byte
    gen = torch.Generator().manual_seed(0)
    dense = {lang: {n: torch.rand(model.get_parameter(n).shape, generator=gen) < 0.5 for n in names}
             for lang in ("es", "fr")}
    masks = SubnetMasks.from_dense(dense, {})
    masker = attach_masker(model, masks)
    for lang in ("es", "fr", "es"):
        masker.activate(lang)
        stored = masks.packed(lang).untyped_storage().data_ptr()
        for layer, name in zip(masker.layers, names):
            assert isinstance(layer.lang_mask, PackedMask)
            assert layer.lang_mask.bits.untyped_storage().data_ptr() == stored
            assert torch.equal(layer.lang_mask.unpacked(), dense[lang][name].to(torch.uint8))
        masker.deactivate()
    assert masker._unpacked_buffer is None  # no byte per weight anywhere


def test_without_the_cpu_passes_every_language_is_unpacked_into_one_buffer(monkeypatch):
    _without_cpu_passes(monkeypatch)
    model = Toy()
    masks = _masks(model)
    masker = attach_masker(model, masks)
    pointers = []
    for lang in ("es", "fr", "es"):
        masker.activate(lang)
        assert all(torch.equal(layer.lang_mask, masks.dense(lang)[n].to(torch.uint8))
                   for layer, n in zip(masker.layers, masks.names))
        pointers.append(masker.layers[0].lang_mask.data_ptr())
        masker.deactivate()
    assert len(set(pointers)) == 1


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
    assert masker.active == "es"
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
    with pytest.raises(ValueError,
                       match="no sub-network mask for language 'it'; masks exist for: es, fr \\(the mask file\\)"):
        masker.activate("it")
    dense_model = Toy()
    dense_masker = attach_masker(dense_model, _masks(dense_model), missing="dense")
    reference = Toy()
    x = torch.randn(2, 6)
    for _ in range(3):  # accumulation over several batches of the language without a mask
        dense_masker.activate("it")
        dense_model(x).sum().backward()
        reference(x).sum().backward()
    assert dense_masker.active == "it"
    for p, q in zip(dense_model.parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad)
    assert find_maskers(dense_model) == [dense_masker]


def test_only_linear_weights_can_be_masked():
    model = Toy()
    masks = SubnetMasks.from_dense({"es": {"head.bias": torch.ones(1, dtype=torch.bool)}}, {})
    with pytest.raises(ValueError, match="head.bias is not the weight of an nn.Linear"):
        attach_masker(model, masks)
def test_source_fingerprint():
    model, _, masker, optimizer = _setup(OPTIMIZERS["adam"])
    assert masker.source_fingerprint_matches(model)
    _steps(model, masker, optimizer, "es", n=1)
    assert not masker.source_fingerprint_matches(model)


@pytest.fixture(params=["bits", "one_byte"])
def gpu_form(request, monkeypatch):
    """The masker's form on the GPU: ``bits`` (the Triton passes read the packed masks) or
    ``one_byte`` (the Triton passes unavailable: an unpacked uint8 mask, PyTorch's kernels)."""
    if not torch.cuda.is_available():
        pytest.fail("no CUDA device: run the gpu tests on a machine with one")
    device = torch.device("cuda", torch.cuda.current_device())
    if request.param == "one_byte":
        monkeypatch.setattr(mask_kernels, "_gpu_passes", {device: None})
    else:
        assert mask_kernels.load_gpu_passes(device), mask_kernels.gpu_pass_errors.get(device)
    return request.param


def _check_form(masker, form):
    """Every layer holds the mask in ``form``; no unpacked buffer exists with bits."""
    bits = form == "bits"
    assert all(isinstance(layer.lang_mask, PackedMask) == bits for layer in masker.layers)
    assert (masker._unpacked_buffer is None) == bits


@pytest.mark.gpu
def test_on_cuda_the_layers_read_the_bits_moved_once(gpu_form):
    model = Toy().cuda()
    masks = _masks(model)
    masker = attach_masker(model, masks)
    for lang in ("es", "fr", "es"):
        masker.activate(lang)
        _check_form(masker, gpu_form)
        for layer, name in zip(masker.layers, masks.names):
            mask = layer.lang_mask.unpacked() if gpu_form == "bits" else layer.lang_mask
            assert mask.is_cuda and torch.equal(mask.cpu(), masks.dense(lang)[name].to(torch.uint8))
        masker.deactivate()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_amp_masked_steps_on_cuda(dtype, gpu_form):
    """AMP on a GPU (fp16 with a GradScaler, bf16 without): weights outside the mask stay
    bit-identical, including a step the scaler skips for an infinite gradient."""
    model = Toy().cuda()
    masks = _masks(model)
    masker = attach_masker(model, masks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    masker.attach_optimizer(optimizer)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    params = dict(model.named_parameters())
    gen = torch.Generator(device="cuda").manual_seed(7)
    es = {n: m.cuda() for n, m in masks.dense("es").items()}

    def step(lang, poison=False):
        masker.activate(lang)
        _check_form(masker, gpu_form)
        x = torch.randn(4, 6, device="cuda", generator=gen)
        with torch.autocast("cuda", dtype=dtype):
            loss = model(x).float().pow(2).mean()
        scaler.scale(loss * (float("inf") if poison else 1.0)).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()

    for _ in range(2):
        step("fr")
    before = {n: params[n].detach().clone() for n in NAMES}
    for poison in (False, True, False):
        step("es", poison=poison and dtype == torch.float16)
    for n in NAMES:
        assert torch.equal(params[n].detach()[~es[n]], before[n][~es[n]]), n
        assert not torch.equal(params[n].detach()[es[n]], before[n][es[n]]), n
    if dtype == torch.float16:
        assert scaler.get_scale() < 65536.0  # the poisoned step was skipped and the scale lowered


@pytest.mark.gpu
@pytest.mark.parametrize("policy", OPTIM_STATE_POLICIES)
def test_masked_steps_do_not_wait_for_the_gpu(policy, gpu_form):
    """Language switches (in the one-byte form the unpack, with a partial last byte here),
    the masked forward and backward and the restore around the optimizer step only queue
    work on the GPU: a device-to-host synchronisation there would stall every training step."""
    model = Toy().cuda()
    masker = attach_masker(model, _masks(model), optim_state_policy=policy)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    masker.attach_optimizer(optimizer)
    x = torch.randn(4, 6, device="cuda")

    def step(lang):
        masker.activate(lang)
        model(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    step("fr")  # the first activation moves the packed masks to the GPU (a blocking copy), Adam makes its state
    _check_form(masker, gpu_form)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for lang in ("es", "fr", "es"):
            step(lang)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_training_with_nm_masks_keeps_the_pattern(tmp_path):
    """Masked training (and so fine-tuning, which runs the same masker) never changes the
    masks: after steps of two languages the masks used and the file are still 2:4."""
    from espnet_s3net.models.pretrain_model import XLSRPretrainModel

    torch.manual_seed(0)
    params = prunable_parameters(XLSRPretrainModel({"name": "xlsr_tiny"}).xlsr)
    dense = {lang: random_masks(params, 0.5, "layerwise", i, "2:4") for i, lang in enumerate(("es", "fr"))}
    path = str(tmp_path / "masks.pt")
    SubnetMasks.from_dense(dense, {"pattern": "2:4"}).save(path)
    model = XLSRPretrainModel({"name": "xlsr_tiny"}, mask_file=path)
    (masker,) = find_maskers(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    masker.attach_optimizer(optimizer)
    weights = dict(model.xlsr.named_parameters())
    gen = torch.Generator().manual_seed(0)
    for lang in ("es", "fr", "es", "fr"):
        masker.activate(lang)
        for layer, name in zip(masker.layers, masker.masks.names):
            assert nm_violation(layer.lang_mask.unpacked(), 2, 4) is None, (lang, name)
        before = {n: weights[n].detach().clone() for n in params}
        loss, _, _ = model(0.1 * torch.randn(2, 16000, generator=gen), torch.tensor([16000, 12000]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        for n, keep in dense[lang].items():
            assert torch.equal(weights[n].detach()[~keep], before[n][~keep]), (lang, n)
            assert not torch.equal(weights[n].detach()[keep], before[n][keep]), (lang, n)
    masker.deactivate()
    for masks in (masker.masks, SubnetMasks.load(path)):
        assert masks.pattern == "2:4"
        for lang in dense:
            for n, mask in masks.dense(lang).items():
                assert torch.equal(mask, dense[lang][n]) and nm_violation(mask, 2, 4) is None, (lang, n)
