"""Decode one language's 2:4 sub-network with semi-structured sparse kernels.

With a mask file of pattern ``"2:4"`` (two of every four consecutive input weights of each
row kept), ``W ⊙ m^l`` of every prunable ``nn.Linear`` is what PyTorch's
``torch.sparse.to_sparse_semi_structured`` compresses (half the values plus 2-bit indices)
for the sparse tensor cores of NVIDIA GPUs of compute capability 8.0 or higher (A100,
H100, ...), in float16 or bfloat16. :func:`use_sparse_kernels` builds these weights for
the active language and makes the masked layers compute with them
(:class:`SemiStructuredLinear`); anywhere else it leaves the dense masked path
(``x (W ⊙ m)ᵀ + b``) in place and logs one line saying why.

The sparse weights belong to one language: a layer whose active mask is no longer the one
they were built from raises instead of computing with another language's weights; calling
:func:`use_sparse_kernels` again after switching rebuilds them (or falls back), and
:func:`drop_sparse_kernels` (which ``use_language(..., sparse_kernels=False)`` calls) puts the
dense masked layers back. They are
for inference only (no gradient reaches ``W``), live next to the dense weights (about
0.56x their size in float16), are not in the ``state_dict`` and do not follow
``module.to(...)``: convert after moving the model.
"""

import logging
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.sparse import (
    SparseSemiStructuredTensor,
    SparseSemiStructuredTensorCUSPARSELT,
    SparseSemiStructuredTensorCUTLASS,
    to_sparse_semi_structured,
)

from espnet_s3net.masks.language_masker import LanguageMasker, MaskedLinear, find_maskers
from espnet_s3net.masks.mask_kernels import Mask, masked_weight

PATTERN = "2:4"
KERNEL_DTYPES = (torch.float16, torch.bfloat16)
MIN_CAPABILITY = (8, 0)
_PROBE_SIZE = 128  # a multiple of every backend's minimum block


class SemiStructuredLinear(MaskedLinear):
    """A :class:`MaskedLinear` computing ``x Sᵀ + b`` with ``sparse_weight`` ``S`` =
    ``W ⊙ m`` compressed for the mask ``sparse_mask`` of language ``sparse_lang``.
    Inference only; raises when the layer's active mask is not ``sparse_mask``."""

    sparse_weight: Optional[SparseSemiStructuredTensor] = None
    sparse_mask: Optional[Mask] = None
    sparse_lang: Optional[str] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lang_mask is None or self.lang_mask is not self.sparse_mask:
            raise RuntimeError(f"this layer holds the 2:4 sparse weights of language {self.sparse_lang}, which is "
                               "no longer active: call espnet_s3net.asr.sparse_kernels.use_sparse_kernels again "
                               "after switching languages")
        if torch.is_grad_enabled() and self.weight.requires_grad:
            raise RuntimeError("semi-structured sparse weights are for inference: run under torch.no_grad()")
        return F.linear(x, self.sparse_weight, self.bias)


def _backend() -> type:
    """The class ``to_sparse_semi_structured`` converts to (cuSPARSELt unless CUTLASS is forced)."""
    if SparseSemiStructuredTensor._FORCE_CUTLASS:
        return SparseSemiStructuredTensorCUTLASS
    return SparseSemiStructuredTensorCUSPARSELT


def _min_block(dtype: torch.dtype) -> Tuple[int, int]:
    """(rows, inputs): a sparse weight's shape must be a multiple of this in ``dtype``."""
    constraint = _backend()._DTYPE_SHAPE_CONSTRAINTS[dtype]
    return constraint.sparse_min_rows, constraint.sparse_min_cols


def _kernel_error(device: torch.device, dtype: torch.dtype) -> Optional[str]:
    """Why a 2:4 sparse product of a (128, 128) probe fails on ``device``, or None."""
    weight = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=dtype, device=device).repeat(_PROBE_SIZE, _PROBE_SIZE // 4)
    try:
        F.linear(torch.ones(8, _PROBE_SIZE, dtype=dtype, device=device), to_sparse_semi_structured(weight))
    except (RuntimeError, NotImplementedError) as exc:
        return f"PyTorch's {_backend().BACKEND} 2:4 kernels do not run here ({str(exc).splitlines()[0]})"
    return None


def _mask_reasons(maskers: List[LanguageMasker], lang: str) -> List[str]:
    """Why the masks and weights of ``maskers`` cannot use the kernels for ``lang``."""
    if not maskers:
        return ["the model has no sub-network masks"]
    reasons = []
    patterns = sorted({masker.masks.pattern for masker in maskers})
    if patterns != [PATTERN]:
        reasons.append(f"the mask pattern is {', '.join(patterns)}, the kernels need {PATTERN}")
    elif any(lang not in masker.masks.languages for masker in maskers):
        reasons.append(f"language {lang} has no mask (the dense model is used)")
    dtype = maskers[0].params[0].dtype
    if dtype not in KERNEL_DTYPES:
        reasons.append(f"the weights are {str(dtype).replace('torch.', '')}, the kernels need float16 or bfloat16")
        return reasons
    rows, cols = _min_block(dtype)
    misfits = [(name, tuple(shape)) for masker in maskers for name, shape in masker.masks.shapes.items()
               if shape[0] % rows or shape[1] % cols]
    if misfits:
        name, shape = misfits[0]
        reasons.append(f"{len(misfits)} prunable weights do not fit the {_backend().BACKEND} kernels, whose (out, in) "
                       f"must be multiples of ({rows}, {cols}): e.g. {name} {shape}")
    return reasons


def _device_reasons(device: torch.device, dtype: torch.dtype, probe: bool) -> List[str]:
    """Why ``device`` cannot run the kernels (with ``probe``: also a product in ``dtype``)."""
    if device.type != "cuda":
        return [f"the weights are on {device}, the kernels need a CUDA GPU"]
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return [f"{torch.cuda.get_device_name(device)} has compute capability {capability[0]}.{capability[1]}, "
                f"the kernels need {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or higher"]
    error = _kernel_error(device, dtype) if probe else None
    return [] if error is None else [error]


def drop_sparse_kernels(model: torch.nn.Module) -> None:
    """Every masked layer of ``model`` back to the dense masked path (``W ⊙ m``); drops the
    sparse weights (nothing to do where none were built)."""
    _drop(find_maskers(model))


def _drop(maskers: List[LanguageMasker]) -> None:
    for masker in maskers:
        for layer in masker.layers:
            layer.__class__ = MaskedLinear
            for name in ("sparse_weight", "sparse_mask", "sparse_lang"):
                layer.__dict__.pop(name, None)


def use_sparse_kernels(model: torch.nn.Module, lang: str) -> Optional[str]:
    """Compute ``lang``'s sub-network in ``model`` (active in every masker, e.g. by
    :func:`espnet_s3net.asr.inference.use_language`) with 2:4 semi-structured sparse weights.

    Sparse weights of an earlier language are dropped first. Returns None when every
    prunable layer uses the kernels; otherwise the reasons they cannot be used, also
    logged as one warning, and the layers compute densely with ``W ⊙ m`` as before.
    """
    maskers = find_maskers(model)
    other = sorted({masker.active or "none" for masker in maskers if masker.active != lang})
    if other:
        raise ValueError(f"activate language {lang} before building its sparse weights (use_language); "
                         f"active: {', '.join(other)}")
    _drop(maskers)
    layers = [layer for masker in maskers for layer in masker.layers]
    reasons = _mask_reasons(maskers, lang)
    if maskers:
        weight = maskers[0].params[0]
        reasons += _device_reasons(weight.device, weight.dtype, probe=not reasons)
    if reasons:
        why = "; ".join(reasons)
        logging.warning(f"language {lang}: semi-structured sparse kernels not used, dense masked weights instead: "
                        f"{why}")
        return why
    with torch.no_grad():
        for layer in layers:
            masked = masked_weight(layer.weight, layer.lang_mask, torch.empty_like(layer.weight))
            sparse = to_sparse_semi_structured(masked)
            layer.__class__ = SemiStructuredLinear
            layer.sparse_weight, layer.sparse_mask, layer.sparse_lang = sparse, layer.lang_mask, lang
    logging.info(f"language {lang}: {len(layers)} linear layers compute with {PATTERN} semi-structured sparse "
                 f"weights ({_backend().BACKEND}, {str(layers[0].weight.dtype).replace('torch.', '')})")
    return None
