"""The masking passes on a GPU, reading the bit-packed mask: Triton kernels.

The GPU counterpart of ``mask_passes.c``: the same passes, in the same argument order, each
one kernel over contiguous tensors of ``n`` elements with the mask as bits in
``numpy.packbits`` order (element ``i`` is bit ``7 - i % 8`` of byte ``i // 8``, the
:class:`~espnet_s3net.masks.mask_file.PackedMask` layout). A program takes :data:`BYTES`
bytes of bits and the ``8 * BYTES`` elements they cover, as a (BYTES, 8) tile: each byte is
read once and spread over its eight elements in registers, and no unpacked mask exists.
Bytes moved per element, besides the 1/8 of the mask: the masked weight reads ``W`` and
writes the output; the gradient mask and the restore write only the elements outside the
mask (the restore reads only their kept values), where PyTorch's kernels on a one-byte
mask read and write every element plus a byte of mask, after an unpack at each switch.
Any floating dtype; the selects are exact (each element is one of its inputs, or zero).
Called by :mod:`espnet_s3net.masks.mask_kernels` for CUDA tensors; importing this module
needs ``triton`` (installed with PyPI's CUDA builds of PyTorch). With ``TRITON_INTERPRET=1``
set before the import, the kernels run on CPU tensors in Triton's interpreter (the tests).
"""

import contextlib

import torch
import triton
import triton.language as tl

#: bytes of bits per program (8 × BYTES elements)
BYTES = 256


@triton.jit
def _bits_tile(bits_ptr, n, BYTES: tl.constexpr):
    """(BYTES, 8) element offsets of this program's tile, whether each is inside ``n``, and
    its bits as booleans."""
    byte = tl.program_id(0).to(tl.int64) * BYTES + tl.arange(0, BYTES)
    packed = tl.load(bits_ptr + byte, mask=byte < (n + 7) // 8, other=0).to(tl.int32)
    lane = tl.arange(0, 8)
    on = ((packed[:, None] >> (7 - lane)[None, :]) & 1) != 0
    offsets = byte[:, None] * 8 + lane[None, :]
    return offsets, offsets < n, on


@triton.jit
def _masked_weight_kernel(out_ptr, w_ptr, bits_ptr, n, BYTES: tl.constexpr):
    offsets, inside, on = _bits_tile(bits_ptr, n, BYTES)
    w = tl.load(w_ptr + offsets, mask=inside)
    tl.store(out_ptr + offsets, tl.where(on, w, tl.zeros_like(w)), mask=inside)


@triton.jit
def _mask_grad_kernel(g_ptr, bits_ptr, n, BYTES: tl.constexpr):
    offsets, inside, on = _bits_tile(bits_ptr, n, BYTES)
    zeros = tl.zeros((BYTES, 8), g_ptr.dtype.element_ty)
    tl.store(g_ptr + offsets, zeros, mask=inside & ~on)  # kept elements are neither read nor written


@triton.jit
def _mask_grad_with_sink_kernel(g_ptr, bits_ptr, sink_ptr, n, BYTES: tl.constexpr):
    offsets, inside, on = _bits_tile(bits_ptr, n, BYTES)
    g = tl.load(g_ptr + offsets, mask=inside)
    square = g.to(tl.float32) * g.to(tl.float32)
    sink = tl.load(sink_ptr + offsets, mask=inside)
    tl.store(sink_ptr + offsets, sink + square, mask=inside)
    tl.store(g_ptr + offsets, tl.zeros_like(g), mask=inside & ~on)


@triton.jit
def _restore_kernel(w_ptr, kept_ptr, bits_ptr, n, BYTES: tl.constexpr):
    offsets, inside, on = _bits_tile(bits_ptr, n, BYTES)
    kept = tl.load(kept_ptr + offsets, mask=inside & ~on)  # only where the mask puts a value back
    tl.store(w_ptr + offsets, kept, mask=inside & ~on)


def _launch(kernel, *tensors: torch.Tensor, n: int) -> None:
    """``kernel`` over ``n`` elements on the tensors' device (on its current stream; CPU
    tensors: Triton's interpreter, ``TRITON_INTERPRET=1``)."""
    device = tensors[0].device
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        kernel[(triton.cdiv(n, 8 * BYTES),)](*tensors, n, BYTES=BYTES)


def masked_weight(out: torch.Tensor, weight: torch.Tensor, bits: torch.Tensor) -> None:
    """``out = weight ⊙ m`` (``out`` and ``weight``: n elements; ``bits``: ceil(n / 8) bytes)."""
    _launch(_masked_weight_kernel, out, weight, bits, n=weight.numel())


def mask_grad(grad: torch.Tensor, bits: torch.Tensor) -> None:
    """``grad ← grad ⊙ m`` in place: zeros written where the bit is 0, nothing else touched."""
    _launch(_mask_grad_kernel, grad, bits, n=grad.numel())


def mask_grad_with_sink(grad: torch.Tensor, bits: torch.Tensor, sink: torch.Tensor) -> None:
    """``sink += grad²`` (float32, computed in float32), then ``grad ← grad ⊙ m``, in one pass."""
    _launch(_mask_grad_with_sink_kernel, grad, bits, sink, n=grad.numel())


def restore(weight: torch.Tensor, kept: torch.Tensor, bits: torch.Tensor) -> None:
    """``weight ← kept`` where the bit is 0 (exact), unchanged where it is 1."""
    _launch(_restore_kernel, weight, kept, bits, n=weight.numel())
