"""The masking passes: compiled (TorchInductor, CPU) and eager forms give the reference
results bit for bit; a failed compilation falls back to eager with one warning."""

import logging

import pytest
import torch

from espnet_s3net.masks import mask_kernels
from espnet_s3net.masks.mask_kernels import accumulate_taylor_, mask_grad_, masked_weight, restore_

SHAPE = (96, 80)


@pytest.fixture(params=["compiled", "eager"])
def mode(request, monkeypatch):
    monkeypatch.setattr(mask_kernels, "COMPILE_MIN_NUMEL", 0 if request.param == "compiled" else 1 << 62)
    return request.param


def _tensors():
    gen = torch.Generator().manual_seed(0)
    w, g, kept = (torch.randn(SHAPE, generator=gen) for _ in range(3))
    mask = (torch.rand(SHAPE, generator=gen) < 0.5).to(torch.uint8)
    return w, g, kept, mask


def test_masked_weight_and_gradient(mode):
    w, g, _, mask = _tensors()
    out = torch.full_like(w, float("nan"))
    assert masked_weight(w, mask, out) is out and torch.equal(out, w * mask.float())
    expected_sink = 0.5 + g * g
    sink, masked = torch.full_like(g, 0.5), g.clone()
    mask_grad_(masked, mask, sink)
    assert torch.equal(masked, g * mask.float())
    torch.testing.assert_close(sink, expected_sink, rtol=1e-6, atol=0)  # eager: one fused multiply-add
    plain = g.clone()
    mask_grad_(plain, mask)
    assert torch.equal(plain, masked)
    if mode == "compiled":
        assert {"masked_weight", "mask_grad", "mask_grad_with_sink"} <= {name for name, _ in mask_kernels._compiled}


def _check_restore(restore):
    w, _, kept, mask = _tensors()
    stepped = w + 1e-3 * torch.randn_like(w)
    target = stepped.clone()
    restore(target, kept, mask)
    assert torch.equal(target[mask.bool()], stepped[mask.bool()])
    assert torch.equal(target[~mask.bool()], kept[~mask.bool()])


def test_restore_is_exact_select(mode):
    _check_restore(restore_)


def test_restore_cuda_form_is_exact_select():
    _check_restore(mask_kernels._select)  # one eager select, run here on CPU tensors


def test_taylor_accumulation(mode):
    w, g, _, _ = _tensors()
    acc = torch.full_like(w, 2.0)
    accumulate_taylor_(acc, g, w)
    score = g * w
    assert torch.allclose(acc, 2.0 + score * score, rtol=1e-6, atol=0)


def test_failed_compilation_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(mask_kernels, "COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(mask_kernels, "_compiled", {})
    monkeypatch.setattr(mask_kernels, "_compile_failed", [False])
    monkeypatch.setattr(torch, "compile", broken)
    w, g, kept, mask = _tensors()
    out, expected = torch.empty_like(w), w * mask.float()
    with caplog.at_level(logging.WARNING):
        masked_weight(w, mask, out)
        restore_(w, kept, mask)
    assert torch.equal(out, expected) and torch.equal(w, torch.where(mask.bool(), expected, kept))
    assert caplog.text.count("cannot compile the masking passes") == 1 and "no C++ compiler" in caplog.text


def test_non_contiguous_tensors_use_eager(monkeypatch):
    monkeypatch.setattr(mask_kernels, "COMPILE_MIN_NUMEL", 0)
    w, _, _, mask = _tensors()
    out = torch.empty(SHAPE[::-1]).t()
    masked_weight(w, mask, out)
    assert torch.equal(out, w * mask.float())


def test_prepare_compiles_kernels_that_take_any_size(monkeypatch):
    from torch._dynamo.utils import counters

    monkeypatch.setattr(mask_kernels, "COMPILE_MIN_NUMEL", 64)
    monkeypatch.setattr(mask_kernels, "_compiled", {})
    monkeypatch.setattr(mask_kernels, "_prepared", set())
    mask_kernels.prepare(torch.float32, ["masked_weight", "mask_grad", "restore"])
    assert {name for name, _ in mask_kernels._compiled} == {"masked_weight", "mask_grad", "restore"}
    graphs = counters["stats"]["unique_graphs"]
    mask_kernels.prepare(torch.float32, ["masked_weight", "mask_grad", "restore"])  # already prepared: skipped
    w, g, kept, mask = _tensors()
    numel = w.numel()
    masks, kept_values = torch.zeros(3 * numel, dtype=torch.uint8), torch.zeros(2 * numel + 16)
    for offset in (0, numel):  # as the masker's views: a mask and a kept value at offset 0 and further on
        m = masks[offset:offset + numel].view(SHAPE).copy_(mask)
        k = kept_values[offset + 16 * (offset > 0):][:numel].view(SHAPE).copy_(kept)
        weight, grad, out = w.clone(), g.clone(), torch.empty_like(w)
        with torch.no_grad():
            masked_weight(weight, m, out)
            mask_grad_(grad, m)
            restore_(weight, k, m)
        assert torch.equal(out, w * mask.float()) and torch.equal(grad, g * mask.float())
        assert torch.equal(weight, torch.where(mask.bool(), w, kept))
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled again


def test_each_thread_count_gets_its_own_kernels(monkeypatch):
    """Inductor bakes the thread count into a kernel and its disk cache does not tell counts
    apart: without the count in the compile options, a 1-thread process would run a kernel
    cached by a 2-thread one (or the reverse)."""
    compiled, real_compile = [], torch.compile

    def recording(fn, **kwargs):
        compiled.append(kwargs.get("options", {}).get("cpp.threads"))
        return real_compile(fn, **kwargs)

    monkeypatch.setattr(mask_kernels, "COMPILE_MIN_NUMEL", 64)
    monkeypatch.setattr(mask_kernels, "_compiled", {})
    monkeypatch.setattr(mask_kernels, "_prepared", set())
    monkeypatch.setattr(torch, "compile", recording)
    threads = torch.get_num_threads()
    w, _, _, mask = _tensors()
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            mask_kernels.prepare(torch.float32, ["masked_weight"])
            out = torch.empty_like(w)
            masked_weight(w, mask, out)
            assert torch.equal(out, w * mask.float())
    finally:
        torch.set_num_threads(threads)
    assert compiled == [1, 2]
    assert set(mask_kernels._compiled) == {("masked_weight", 1), ("masked_weight", 2)}
