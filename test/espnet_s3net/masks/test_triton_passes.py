"""The Triton masking passes (the GPU form of the masking passes) give the reference results
bit for bit, for every dtype and a size that is not a multiple of 8 nor of a program's
tile. Here they run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``, which
must be set before the kernels are defined, so in a process of their own); on a GPU the
``gpu`` tests run them compiled through :mod:`espnet_s3net.masks.mask_kernels`."""

import logging
import os
import subprocess
import sys

import pytest
import torch

from espnet_s3net.masks import mask_kernels
from espnet_s3net.masks.mask_file import PackedMask, pack_bits
from espnet_s3net.masks.mask_kernels import mask_grad_, masked_weight, restore_

pytest.importorskip("triton")

SHAPE = (257, 263)  # 67591 elements: several programs of 2048, the last partial, a partial last byte
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]

INTERPRETED = """
import sys
import torch
from espnet_s3net.masks import mask_kernels, triton_passes

inputs = torch.load(sys.argv[1])
results = {}
for name, (w, g, kept, bits) in inputs.items():
    out = torch.full_like(w, float("nan"))
    triton_passes.masked_weight(out, w, bits)
    masked = g.clone()
    triton_passes.mask_grad(masked, bits)
    restored = w + 0.01
    triton_passes.restore(restored, kept, bits)
    results[name] = [out, masked, restored]
    if w.dtype == torch.float32:
        sink, sunk = torch.full_like(w, 0.5), g.clone()
        triton_passes.mask_grad_with_sink(sunk, bits, sink)
        results[name] += [sunk, sink]
mask_kernels._check_gpu_passes(triton_passes, torch.device("cpu"))  # the check a GPU gets at its first use
torch.save(results, sys.argv[2])
"""


def _tensors(dtype):
    gen = torch.Generator().manual_seed(0)
    w, g, kept = (torch.randn(SHAPE, generator=gen).to(dtype) for _ in range(3))
    mask = torch.rand(SHAPE, generator=gen) < 0.5
    return w, g, kept, mask


def test_interpreted_triton_passes_match_the_reference(tmp_path):
    inputs = {}
    for dtype in DTYPES:
        w, g, kept, mask = _tensors(dtype)
        inputs[str(dtype)] = (w, g, kept, pack_bits(mask.reshape(-1)))
    torch.save(inputs, tmp_path / "inputs.pt")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    subprocess.run([sys.executable, "-c", INTERPRETED, str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
                   env=env, check=True, timeout=600)
    results = torch.load(tmp_path / "out.pt")
    for dtype in DTYPES:
        w, g, kept, mask = _tensors(dtype)
        out, masked, restored = results[str(dtype)][:3]
        assert torch.equal(out, w * mask.to(dtype)), dtype
        assert torch.equal(masked, g * mask.to(dtype)), dtype
        assert torch.equal(restored, torch.where(mask, w + 0.01, kept)), dtype
        if dtype == torch.float32:
            sunk, sink = results[str(dtype)][3:]
            assert torch.equal(sunk, g * mask)
            torch.testing.assert_close(sink, 0.5 + g * g, rtol=1e-6, atol=0)


def test_gpu_passes_that_fail_their_check_leave_the_eager_forms_with_one_warning(monkeypatch, caplog):
    def broken(passes, device):
        raise RuntimeError("the Triton pass restore differs from PyTorch's result")

    monkeypatch.setattr(mask_kernels, "_gpu_passes", {})
    monkeypatch.setattr(mask_kernels, "gpu_pass_errors", {})
    monkeypatch.setattr(mask_kernels, "_check_gpu_passes", broken)
    device = torch.device("cuda", 0)
    with caplog.at_level(logging.WARNING):
        assert not mask_kernels.load_gpu_passes(device) and not mask_kernels.load_gpu_passes(device)
    assert caplog.text.count("the Triton masking passes do not run on cuda:0") == 1
    assert "restore differs" in mask_kernels.gpu_pass_errors[device]
    assert not mask_kernels.reads_bits(device)


def test_the_gpu_passes_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(mask_kernels, "_gpu_passes", {})
    monkeypatch.setattr(mask_kernels, "gpu_pass_errors", {})
    monkeypatch.setenv(mask_kernels.GPU_PASSES_SWITCH, "0")
    device = torch.device("cuda", 0)
    assert not mask_kernels.load_gpu_passes(device)
    assert mask_kernels.gpu_pass_errors[device] == "switched off by ESPNET_S3NET_GPU_MASK_PASSES=0"


def test_a_wrong_pass_fails_the_check():
    from types import SimpleNamespace

    def zeros(out, w, bits):
        out.zero_()

    fine = SimpleNamespace(mask_grad=lambda g, bits: None, restore=lambda w, kept, bits: None)
    with pytest.raises(RuntimeError, match="masked_weight differs"):
        mask_kernels._check_gpu_passes(SimpleNamespace(masked_weight=zeros, **vars(fine)), torch.device("cpu"))


def _cuda():
    if not torch.cuda.is_available():
        pytest.fail("no CUDA device: run the gpu tests on a machine with one")
    return torch.device("cuda", torch.cuda.current_device())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_on_cuda_packed_masks_take_the_triton_passes(dtype, monkeypatch):
    device = _cuda()
    assert mask_kernels.load_gpu_passes(device), mask_kernels.gpu_pass_errors.get(device)

    def no_eager(mask):
        raise AssertionError("an eager form ran")

    monkeypatch.setattr(mask_kernels, "_tensor", no_eager)
    w, g, kept, mask = (t.to(device) for t in _tensors(dtype))
    packed = PackedMask(pack_bits(mask.reshape(-1)), mask.shape)
    out = torch.full_like(w, float("nan"))
    version = out._version
    assert torch.equal(masked_weight(w, packed, out), w * mask.to(dtype)) and out._version > version
    masked = g.clone()
    mask_grad_(masked, packed)
    assert torch.equal(masked, g * mask.to(dtype))
    restored = w + 0.01
    restore_(restored, kept, packed)
    assert torch.equal(restored, torch.where(mask, w + 0.01, kept))
    if dtype == torch.float32:
        sink, sunk = torch.full_like(w, 0.5), g.clone()
        mask_grad_(sunk, packed, sink)
        assert torch.equal(sunk, g * mask)
        torch.testing.assert_close(sink, 0.5 + g * g, rtol=1e-6, atol=0)
