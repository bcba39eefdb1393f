"""The weight-sized element-wise passes of masked training, each one pass over memory.

A weight's language mask comes in one of two forms (see
:mod:`espnet_s3net.masks.language_masker`): :class:`~espnet_s3net.masks.mask_file.PackedMask`,
its bits as stored (1 bit per weight), or a uint8 0/1 tensor of the weight's shape (1 byte
per weight). Each pass reads the mask inside the pass:

- :func:`masked_weight` ``out = W ⊙ m`` (forward, and again in the backward);
- :func:`mask_grad_` ``g ← g ⊙ m``, first adding ``g²`` into a float32 sink if one is given;
- :func:`restore_` ``W ← m ? W : kept`` (exact: the kept value or the step's, never a mix);
- :func:`accumulate_taylor_` ``acc += (g ⊙ W)²`` (pathway importance, no mask).

On CPU a packed mask is read by the C loops of ``mask_passes.c`` (each byte of bits spread
over eight elements in vector registers: no unpacked mask exists anywhere), built by
:func:`load_cpu_passes` with the system C compiler (``$CC`` or ``cc``; ``-O3 -march=native
-fopenmp``, about a second) into ``$ESPNET_S3NET_CACHE`` (default ``~/.cache/espnet_s3net``),
once per source, compiler and CPU, and loaded with :mod:`ctypes`: a process holds one small
library, not a compiler. Each call splits the elements over ``torch.get_num_threads()``
threads. The selects (``masked_weight``, ``mask_grad_``, ``restore_``) move elements as
integers of their width, so they serve any 2-, 4- or 8-byte dtype; the squares need float32
or float64. On CUDA the same passes are Triton kernels (:mod:`espnet_s3net.masks.triton_passes`,
each byte of bits read once per eight elements), loaded and checked against the eager forms
once per device by :func:`load_gpu_passes`. :func:`reads_bits` says which form a device's
passes take. A uint8 mask goes to the eager forms: PyTorch's element-wise kernels, which on
CUDA cast mixed dtypes on the fly (each pass one kernel) and on CPU first convert the mask
into a temporary. The eager forms also run where nothing can be built or loaded (no C
compiler on CPU, no Triton on CUDA), for other dtypes and for non-contiguous tensors, a
packed mask then unpacked first (same results; a warning once when the passes are missing).
"""

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Union

import torch

from espnet_s3net.masks.mask_file import PackedMask, pack_bits

#: a weight's language mask: its bits, or uint8 0/1 of the weight's shape
Mask = Union[PackedMask, torch.Tensor]

SOURCE = Path(__file__).with_name("mask_passes.c")

#: compiler options tried in turn: the first set that builds is used
FLAG_SETS = (["-march=native", "-fopenmp"], ["-fopenmp"], [])
_BASE_FLAGS = ["-O3", "-std=c11", "-shared", "-fPIC"]
_SIGNATURES = {
    **{f"{name}_{bits}": args for bits in (16, 32, 64) for name, args in (
        ("masked_weight", 3), ("mask_grad", 2), ("restore", 3))},
    **{f"{name}_{dtype}": 3 for dtype in ("float32", "float64")
       for name in ("mask_grad_with_sink", "accumulate_taylor")},
}


class _Library:
    """The loaded passes (``lib``), or why there are none (``error``); neither before :func:`load_cpu_passes`."""

    lib: Optional[ctypes.CDLL] = None
    error: Optional[str] = None


_library = _Library()


def cache_dir() -> Path:
    """Where built libraries are kept: ``$ESPNET_S3NET_CACHE``, else ``$XDG_CACHE_HOME/espnet_s3net``
    (``~/.cache/espnet_s3net``)."""
    if os.environ.get("ESPNET_S3NET_CACHE"):
        return Path(os.environ["ESPNET_S3NET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "espnet_s3net"


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's feature flags (Linux) or its name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), platform.processor())
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _build(compiler: str, flags: List[str], path: Path) -> None:
    """Compile SOURCE into ``path`` (written under another name, then renamed: processes
    building at once, e.g. DDP ranks, never load a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(fd)
    try:
        subprocess.run([compiler, *_BASE_FLAGS, *flags, str(SOURCE), "-o", tmp], check=True, capture_output=True,
                       text=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _open() -> ctypes.CDLL:
    """Build (or find in :func:`cache_dir`) and load the passes; raises RuntimeError saying why not."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler found (set CC, or install gcc)")
    try:
        version = subprocess.run([compiler, "--version"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"C compiler {compiler} does not run: {e}") from e
    source, errors = SOURCE.read_bytes(), []
    for flags in FLAG_SETS:
        key = hashlib.sha256(b"\0".join([source, version.encode(), " ".join(flags).encode(),
                                         _cpu_id().encode() if "-march=native" in flags else b""]))
        path = cache_dir() / f"mask_passes-{key.hexdigest()[:16]}.so"
        if not path.exists():
            logging.info(f"building the CPU masking passes: {compiler} {' '.join(flags)} {SOURCE.name} -> {path}")
            try:
                _build(compiler, flags, path)
            except subprocess.CalledProcessError as e:
                first_line = next(iter((e.stderr or "").strip().splitlines()), "")
                errors.append(f"{' '.join(flags) or 'no options'}: {first_line}")
                continue
            except OSError as e:
                raise RuntimeError(f"cannot write {path} ({e}); set ESPNET_S3NET_CACHE to a writable directory") from e
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise RuntimeError(f"cannot load {path} ({e}); delete it to build it again") from e
        for name, pointers in _SIGNATURES.items():
            getattr(lib, name).argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64, ctypes.c_int]
            getattr(lib, name).restype = None
        return lib
    raise RuntimeError(f"{compiler} cannot build {SOURCE.name} ({'; '.join(errors)})")


def load_cpu_passes() -> bool:
    """Build or load the CPU passes now (once per process; later calls are a lookup), so that
    nothing compiles inside a training step. Returns whether they are available; if not,
    logs why once and the eager forms run."""
    if _library.lib is None and _library.error is None:
        try:
            _library.lib = _open()
        except RuntimeError as e:
            _library.error = str(e)
            logging.warning(f"masked training: cannot build the CPU masking passes ({e}); using eager PyTorch "
                            "ops, which convert each mask into a temporary (slower, more memory traffic)")
    return _library.lib is not None


def _run(name: Optional[str], eager: Callable[[], None], *args: Union[torch.Tensor, PackedMask],
         gpu: Optional[str] = None) -> None:
    """A compiled pass on ``args`` when one fits, else ``eager()``. ``name``: the C library's
    pass for these dtypes and a packed mask (None: none fits: a dtype it lacks, a uint8
    mask); ``gpu``: the Triton pass of :mod:`espnet_s3net.masks.triton_passes` computing the
    same (taken under the same conditions as ``name``). They run on contiguous tensors of
    one element count (packed masks of that many bits) on one device: the C pass on CPU,
    the Triton pass on CUDA, each when it loads (:func:`reads_bits`)."""
    numel = next(a.numel() for a in args if not isinstance(a, PackedMask))
    fits = all(a.shape.numel() == numel if isinstance(a, PackedMask) else a.numel() == numel for a in args)
    tensors = [a.bits if isinstance(a, PackedMask) else a for a in args]
    device = tensors[0].device
    if (name is not None and (device.type == "cpu" or gpu is not None) and fits
            and all(t.device == device and t.is_contiguous() for t in tensors) and reads_bits(device)):
        if device.type == "cpu":
            getattr(_library.lib, name)(*(t.data_ptr() for t in tensors), numel, torch.get_num_threads())
        else:
            getattr(_gpu_passes[device], gpu)(*tensors)
        torch.autograd.graph.increment_version(tensors[0])
    else:
        eager()


#: environment variable: ``0`` keeps the Triton passes off (the one-byte mask on every GPU)
GPU_PASSES_SWITCH = "ESPNET_S3NET_GPU_MASK_PASSES"
#: device -> the loaded Triton passes (None: unavailable there); see load_gpu_passes
_gpu_passes = {}
#: device -> why the Triton passes are unavailable there
gpu_pass_errors = {}


def load_gpu_passes(device: torch.device) -> bool:
    """Import the Triton passes and check them on ``device`` (CUDA), once per device and
    process, against the eager forms on a tensor with a partial last byte; whether they are
    available. If Triton is missing, a kernel does not build, run or agree, or
    ``$ESPNET_S3NET_GPU_MASK_PASSES`` is ``0``, this is logged once and the masker uses the
    eager forms on a one-byte mask instead."""
    device = torch.device(device)
    if device not in _gpu_passes:
        try:
            if os.environ.get(GPU_PASSES_SWITCH) == "0":
                raise RuntimeError(f"switched off by {GPU_PASSES_SWITCH}=0")
            from espnet_s3net.masks import triton_passes

            _check_gpu_passes(triton_passes, device)
            _gpu_passes[device] = triton_passes
        except Exception as e:  # an ImportError, or any failure to build or launch a kernel
            _gpu_passes[device] = None
            gpu_pass_errors[device] = str(e)
            logging.warning(f"masked training: the Triton masking passes do not run on {device} ({e}); "
                            "using PyTorch's kernels on a one-byte copy of the active language's mask")
    return _gpu_passes[device] is not None


def _check_gpu_passes(passes, device: torch.device) -> None:
    """Run each Triton pass on ``device`` (1001 float32 elements) and compare with the eager
    forms; raises RuntimeError naming the first that differs."""
    gen = torch.Generator().manual_seed(0)
    w, kept = (torch.randn(1001, generator=gen).to(device) for _ in range(2))
    mask = (torch.rand(1001, generator=gen) < 0.5).to(device)
    bits = pack_bits(mask)
    out, grad, restored = torch.empty_like(w), w.clone(), w.clone()
    passes.masked_weight(out, w, bits)
    passes.mask_grad(grad, bits)
    passes.restore(restored, kept, bits)
    expected = {"masked_weight": (out, w * mask), "mask_grad": (grad, w * mask),
                "restore": (restored, torch.where(mask, w, kept))}
    for name, (got, want) in expected.items():
        if not torch.equal(got, want):
            raise RuntimeError(f"the Triton pass {name} differs from PyTorch's result")


def reads_bits(device: torch.device) -> bool:
    """Whether the passes read a :class:`PackedMask` on ``device``: on CPU with the C library
    (:func:`load_cpu_passes`), on CUDA with the Triton passes (:func:`load_gpu_passes`). The
    masker hands the layers bits where this holds, else uint8 masks."""
    device = torch.device(device)
    if device.type == "cpu":
        return load_cpu_passes()
    return device.type == "cuda" and load_gpu_passes(device)


def _select_pass(name: str, values: torch.Tensor, other: Optional[torch.Tensor], mask: Mask) -> Optional[str]:
    """The library's select ``name`` for ``values`` (and ``other`` of the same dtype) with a
    packed ``mask``, by element width; None if it has none."""
    if not isinstance(mask, PackedMask) or values.element_size() not in (2, 4, 8):
        return None
    if other is not None and other.dtype != values.dtype:
        return None
    return f"{name}_{8 * values.element_size()}"


def _float_pass(name: str, values: torch.Tensor, *same: torch.Tensor) -> Optional[str]:
    """The library's float pass ``name`` for ``values``' dtype (float32 or float64, ``same``
    of that dtype too); None if it has none."""
    if values.dtype not in (torch.float32, torch.float64) or any(t.dtype != values.dtype for t in same):
        return None
    return f"{name}_{str(values.dtype).removeprefix('torch.')}"


def _tensor(mask: Mask) -> torch.Tensor:
    """``mask`` as 0/1 of the weight's shape (a packed one unpacked), for the eager forms."""
    return mask.unpacked() if isinstance(mask, PackedMask) else mask


def masked_weight(weight: torch.Tensor, mask: Mask, out: torch.Tensor) -> torch.Tensor:
    """``out = weight ⊙ mask`` (``out``: weight's shape and dtype, contiguous); returns ``out``."""
    _run(_select_pass("masked_weight", weight, out, mask), lambda: torch.mul(weight, _tensor(mask), out=out),
         out, weight, mask, gpu="masked_weight")
    return out


def mask_grad_(grad: torch.Tensor, mask: Mask, sink: Optional[torch.Tensor] = None) -> None:
    """``grad ← grad ⊙ mask`` in place; with ``sink`` (float32), ``sink += grad²`` first."""
    def eager():
        if sink is not None:
            sink.addcmul_(grad, grad)
        grad.mul_(_tensor(mask))

    if sink is None:
        _run(_select_pass("mask_grad", grad, None, mask), eager, grad, mask, gpu="mask_grad")
    else:
        fits = isinstance(mask, PackedMask) and sink.dtype == torch.float32
        _run(_float_pass("mask_grad_with_sink", grad) if fits else None, eager, grad, mask, sink,
             gpu="mask_grad_with_sink")


def restore_(weight: torch.Tensor, kept: torch.Tensor, mask: Mask) -> None:
    """``weight ← kept`` where ``mask`` is 0, unchanged where it is 1 (in place, exact)."""
    def eager():
        if weight.device.type == "cpu":  # a lerp with weight 0 or 1 is exact; CPU's where is not vectorised
            torch.lerp(kept, weight, _tensor(mask).to(weight.dtype), out=weight)
        else:
            _select(weight, kept, _tensor(mask))

    _run(_select_pass("restore", weight, kept, mask), eager, weight, kept, mask, gpu="restore")


def _select(weight: torch.Tensor, kept: torch.Tensor, mask: torch.Tensor) -> None:
    """The restore as one mixed-dtype select (CUDA)."""
    torch.where(mask.view(torch.bool), weight, kept, out=weight)


def accumulate_taylor_(acc: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor) -> None:
    """``acc += (grad ⊙ weight)²`` in place (``acc`` float32, the others weight-shaped)."""
    def eager():
        score = grad * weight
        acc.addcmul_(score, score)

    name = _float_pass("accumulate_taylor", grad, weight) if acc.dtype == torch.float32 else None
    _run(name, eager, acc, grad, weight)
