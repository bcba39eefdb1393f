"""The masking passes: the C library (CPU, bit-packed masks) and the eager forms (uint8
masks, or packed ones without the library) give the reference results bit for bit, for
every dtype, size and thread count; a failed build falls back to eager with one warning; a
built library is reused."""

import logging

import pytest
import torch

from espnet_s3net.masks import mask_kernels
from espnet_s3net.masks.mask_file import PackedMask, pack_bits
from espnet_s3net.masks.mask_kernels import accumulate_taylor_, mask_grad_, masked_weight, restore_

SHAPE = (257, 263)  # above the C passes' threading threshold, not a multiple of 8, a vector or 64
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@pytest.fixture(params=["library", "eager", "uint8"])
def mode(request, monkeypatch):
    """``library``: packed masks through the C passes (never the eager forms); ``eager``:
    packed masks without the library; ``uint8``: byte masks, which take the eager forms."""
    if request.param == "eager":
        off = mask_kernels._Library()
        off.error = "disabled by the test"
        monkeypatch.setattr(mask_kernels, "_library", off)
    else:
        assert mask_kernels.load_cpu_passes(), mask_kernels._library.error
    if request.param == "library":
        def no_eager(mask):
            raise AssertionError("an eager form ran")

        monkeypatch.setattr(mask_kernels, "_tensor", no_eager)
    return request.param


def _form(mask, mode):
    """``mask`` (uint8 0/1) as the test ``mode`` hands it to the passes."""
    return mask if mode == "uint8" else PackedMask(pack_bits(mask.reshape(-1).bool()), mask.shape)


@pytest.fixture(params=[1, 2, 3])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _tensors(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    w, g, kept = (torch.randn(SHAPE, generator=gen).to(dtype) for _ in range(3))
    mask = (torch.rand(SHAPE, generator=gen) < 0.5).to(torch.uint8)
    return w, g, kept, mask


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_weight_gradient_and_restore(mode, threads, dtype):
    w, g, kept, mask = _tensors(dtype)
    on, given = mask.bool(), _form(mask, mode)
    out = torch.full_like(w, float("nan"))
    version = out._version
    assert masked_weight(w, given, out) is out and torch.equal(out, w * mask.to(dtype))
    assert out._version > version  # written in place: autograd sees it
    masked = g.clone()
    mask_grad_(masked, given)
    assert torch.equal(masked, g * mask.to(dtype))
    stepped = w + 0.01
    restore_(stepped, kept, given)
    assert torch.equal(stepped[on], (w + 0.01)[on]) and torch.equal(stepped[~on], kept[~on])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_sink_and_taylor_accumulation(mode, threads, dtype):
    w, g, _, mask = _tensors(dtype)
    sink, masked = torch.full(SHAPE, 0.5), g.clone()
    mask_grad_(masked, _form(mask, mode), sink)
    assert torch.equal(masked, g * mask.to(dtype))
    torch.testing.assert_close(sink, 0.5 + (g * g).float(), rtol=1e-6, atol=0)  # fused or not
    acc = torch.full(SHAPE, 2.0)
    accumulate_taylor_(acc, g, w)
    torch.testing.assert_close(acc, 2.0 + ((g * w) ** 2).float(), rtol=1e-6, atol=0)


def test_restore_cuda_form_is_exact_select():
    w, _, kept, mask = _tensors()
    stepped = w + 0.01
    mask_kernels._select(stepped, kept, mask)  # one eager select, run here on CPU tensors
    assert torch.equal(stepped, torch.where(mask.bool(), w + 0.01, kept))


def test_non_contiguous_tensors_and_bool_masks_use_eager():
    assert mask_kernels.load_cpu_passes()
    w, _, kept, mask = _tensors()
    out = torch.empty(SHAPE[::-1]).t()
    masked_weight(w, _form(mask, "library"), out)
    assert torch.equal(out, w * mask.float())
    stepped = w + 0.01
    restore_(stepped, kept, mask.bool())
    assert torch.equal(stepped, torch.where(mask.bool(), w + 0.01, kept))


def _fresh_library(monkeypatch, tmp_path):
    monkeypatch.setenv("ESPNET_S3NET_CACHE", str(tmp_path))
    monkeypatch.setattr(mask_kernels, "_library", mask_kernels._Library())


def test_failed_build_falls_back_to_eager_with_one_warning(monkeypatch, tmp_path, caplog):
    _fresh_library(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    w, g, kept, mask = _tensors()
    out, expected = torch.empty_like(w), w * mask.float()
    with caplog.at_level(logging.WARNING):
        masked_weight(w, _form(mask, "eager"), out)
        restore_(w, kept, _form(mask, "eager"))
    assert torch.equal(out, expected) and torch.equal(w, torch.where(mask.bool(), expected, kept))
    assert caplog.text.count("cannot build the CPU masking passes") == 1 and "no-such-cc" in caplog.text


def test_options_the_compiler_rejects_are_skipped(monkeypatch, tmp_path):
    _fresh_library(monkeypatch, tmp_path)
    monkeypatch.setattr(mask_kernels, "FLAG_SETS", (["-fno-such-option"], ["-O1"]))
    assert mask_kernels.load_cpu_passes()
    assert len(list(tmp_path.glob("mask_passes-*.so"))) == 1
    w, _, _, mask = _tensors()
    assert torch.equal(masked_weight(w, _form(mask, "library"), torch.empty_like(w)), w * mask.float())


def test_a_built_library_is_reused(monkeypatch, tmp_path):
    _fresh_library(monkeypatch, tmp_path)
    assert mask_kernels.load_cpu_passes()
    built = sorted(tmp_path.iterdir())
    assert [p.suffix for p in built] == [".so"]  # no temporary left behind

    def no_build(*args):
        raise AssertionError("built again")

    monkeypatch.setattr(mask_kernels, "_library", mask_kernels._Library())
    monkeypatch.setattr(mask_kernels, "_build", no_build)
    assert mask_kernels.load_cpu_passes() and sorted(tmp_path.iterdir()) == built


def test_a_library_that_does_not_load_is_named_and_eager_runs(monkeypatch, tmp_path, caplog):
    _fresh_library(monkeypatch, tmp_path)

    def unloadable(path):
        raise OSError("invalid ELF header")

    monkeypatch.setattr(mask_kernels.ctypes, "CDLL", unloadable)
    w, _, _, mask = _tensors()
    with caplog.at_level(logging.WARNING):
        assert torch.equal(masked_weight(w, _form(mask, "eager"), torch.empty_like(w)), w * mask.float())
    assert "invalid ELF header" in caplog.text and "delete it to build it again" in caplog.text
