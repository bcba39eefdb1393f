"""What one masked training step must cost: the masking passes of a weight, in weight copies.

The ``masked_step`` benchmark measures the whole step; this one explains its
``overhead_weight_copies``. For one weight of ``--shape`` (float32; default an XLSR base
feed-forward matrix), each element-wise pass a masked step makes is timed (median of
``--repeats``, one CPU thread or the GPU with a synchronize) and divided by the time of
one copy of the weight. The designs are then summed per step (forward, backward, the
restore around the optimizer step):

- ``masker`` (what :mod:`espnet_s3net.masks.language_masker` does), each one pass of
  :mod:`espnet_s3net.masks.mask_kernels`: ``W ⊙ m`` in the forward and again in the backward
  (recomputed, not saved), the gradient masked, the weights copied before the step and put
  back by a select after it. The mask is read as the masker holds it: its bits where the
  device's passes read them (on CPU the C loops built with the system compiler, on CUDA the
  Triton kernels; ``masker_reads_bits``), else uint8, 1 byte per weight;
- ``masker_one_byte_mask``: the same passes on the uint8 mask (the masker's form without
  those passes: PyTorch's kernels, mixed-dtype on CUDA, ``unpack_at_switch`` filling the
  mask from the bits at each switch), measured in the same run for comparison;
- ``uint8_mask_eager``: uint8 masks with eager PyTorch ops, which on CPU convert the mask
  into the weight's dtype in a pass of its own before each use (the masker's form on CPU
  where nothing can be built);
- ``float_mask``: the eager ops with the mask kept in the weight's dtype (4 bytes per
  weight, +3 over uint8, through the activation peak): no conversions;
- ``float_mask_saved``: also saving ``W ⊙ m`` for the backward (+4 more bytes per weight
  through the activation peak): no recomputation.

``extra_bytes_per_weight`` is what each design holds beyond the dense model through the
forward and backward (the bit-packed masks of every language, 1/8 byte per language, come
on top of all of them). ``unpack_at_switch``: the weight's bit-packed mask unpacked into the
uint8 one (:func:`espnet_s3net.masks.mask_file.unpack_bits`), once per language switch in
the one-byte form, not in the per-step sums. Also timed, for the record: ``torch.where``/``masked_fill``
with a bool mask, the obvious single-pass alternatives (on this CPU build they are not
vectorised and cost many copies).
"""

import argparse
import statistics
from typing import Callable, List

import numpy as np
import torch

from espnet_s3net.benchmarks._timing import on_device, timed
from espnet_s3net.masks.mask_file import PackedMask, unpack_bits
from espnet_s3net.masks.mask_kernels import mask_grad_, masked_weight, reads_bits, restore_


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark mask_ops", description=__doc__)
    parser.add_argument("--shape", type=int, nargs=2, default=[3072, 768], metavar=("OUT", "IN"))
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    on_device(args.device)

    gen = torch.Generator().manual_seed(0)
    shape, dev = tuple(args.shape), args.device
    w, g = torch.randn(shape, generator=gen).to(dev), torch.randn(shape, generator=gen).to(dev)
    kept, out = torch.empty_like(w), torch.empty_like(w)
    mask_u8 = (torch.rand(shape, generator=gen) < 0.5).to(torch.uint8).to(dev)
    mask_f, mask_b, zero = mask_u8.to(w.dtype), mask_u8.bool(), torch.zeros((), device=dev)
    packed = torch.from_numpy(np.packbits(mask_u8.cpu().numpy())).to(dev)
    bits = reads_bits(torch.device(dev))
    mask = PackedMask(packed, mask_u8.shape) if bits else mask_u8  # the masker's form on this device

    def median_s(call: Callable[[], object]) -> float:
        call()
        return statistics.median(timed(call, dev) for _ in range(args.repeats))

    copy_s = median_s(lambda: kept.copy_(w))
    ops = {
        "masked_weight": lambda: masked_weight(w, mask, out),
        "mask_grad": lambda: mask_grad_(g, mask),
        "restore": lambda: restore_(out, kept, mask),
        "masked_weight_one_byte": lambda: masked_weight(w, mask_u8, out),
        "mask_grad_one_byte": lambda: mask_grad_(g, mask_u8),
        "restore_one_byte": lambda: restore_(out, kept, mask_u8),
        "convert_mask": lambda: out.copy_(mask_u8),
        "mul_float_mask": lambda: torch.mul(w, mask_f, out=out),
        "grad_mul_float_mask": lambda: g.mul_(mask_f),
        "copy_before_step": lambda: kept.copy_(w),
        "lerp_restore": lambda: torch.lerp(kept, w, mask_f, out=out),
        "where_bool": lambda: torch.where(mask_b, w, zero, out=out),
        "masked_fill_bool": lambda: g.masked_fill_(~mask_b, 0),
        "unpack_at_switch": lambda: unpack_bits(packed, mask_u8.numel(), out=mask_u8.view(-1)),
    }
    copies = {name: median_s(call) / copy_s for name, call in ops.items()}
    apply_u8 = copies["convert_mask"] + copies["mul_float_mask"]
    restore = copies["copy_before_step"] + copies["lerp_restore"]
    designs = {
        # forward, backward (recompute + gradient), restore (+ its conversion)
        "masker": (2 * copies["masked_weight"] + copies["mask_grad"] + copies["copy_before_step"]
                   + copies["restore"]),
        "masker_one_byte_mask": (2 * copies["masked_weight_one_byte"] + copies["mask_grad_one_byte"]
                                 + copies["copy_before_step"] + copies["restore_one_byte"]),
        "uint8_mask_eager": 2 * apply_u8 + copies["grad_mul_float_mask"] + restore + copies["convert_mask"],
        "float_mask": 2 * copies["mul_float_mask"] + copies["grad_mul_float_mask"] + restore,
        "float_mask_saved": copies["mul_float_mask"] + copies["grad_mul_float_mask"] + restore,
    }
    return {
        "op_weight_copies": copies,
        "step_weight_copies": designs,
        "masker_reads_bits": bits,
        "extra_bytes_per_weight": {"masker": 0 if bits else 1, "masker_one_byte_mask": 1, "uint8_mask_eager": 1,
                                   "float_mask": 4, "float_mask_saved": 8},
        "copy_ms": 1e3 * copy_s, "shape": list(shape), "device": dev, "repeats": args.repeats,
    }
