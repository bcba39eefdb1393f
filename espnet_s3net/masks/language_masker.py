"""Put a language's sub-network mask on a model, for training steps and for decoding.

Every prunable tensor is the weight ``W`` of an ``nn.Linear``. For language ``l``
(S3Net, language-adaptive training):

1. :meth:`LanguageMasker.activate` hands ``m^l`` to the linear layers, which become
   :class:`MaskedLinear` (same parameters, same state dict). Every language's masks are
   kept bit-packed, and the layers get the bits themselves
   (:class:`~espnet_s3net.masks.mask_file.PackedMask`: on CPU views of the mask file's, on
   a GPU of every language's bits moved there once), which the passes read directly (on
   CPU the C library, on CUDA Triton kernels); where those passes are missing (no C
   compiler, no Triton), the active language is unpacked into one uint8 buffer on the
   device at a switch, for PyTorch's kernels. Their forward computes
   ``y = x (W ⊙ m^l)ᵀ + b`` and their backward recomputes ``W ⊙ m^l`` instead of saving
   it (no extra activation memory) and returns ``∂L/∂W ⊙ m^l``: gradient clipping, DDP's
   all-reduce and the optimizer only see the sub-network's gradient. The stored weights
   are never overwritten by the mask, so ``state_dict`` is always the dense model.
2. In every step of an attached optimizer, weights outside ``m^l`` are put back
   bit-identical: the step's pre-hook updates the prunable weights a chunk at a time
   (:data:`RESTORE_CHUNK_BYTES` on CPU): it copies the chunk into a small buffer, used
   by every chunk of the step and freed after it, runs the optimizer's update with only
   the chunk's gradients visible, and puts back ``W ← m^l ? W : kept``, undoing whatever
   stale momentum or weight decay did outside the mask; the optimizer's own step then
   updates the other parameters. A buffer of all prunable weights, allocated per step,
   would cost fresh pages (more than two weight copies of time at ``xlsr_base`` on CPU);
   kept between steps, it would sit on top of the activation peak.
3. Optimizer state, ``optim_state_policy``: ``shared`` leaves it to the optimizer
   (Adam moments of weights outside ``m^l`` decay as for a zero gradient during other
   languages' steps); ``frozen`` also puts back every state tensor of the weight's
   shape (e.g. Adam's ``exp_avg``/``exp_avg_sq``) outside ``m^l``, so a weight's
   moments only change during steps of languages that use it.

4. Masks may change during training (a pathway schedule, :mod:`espnet_s3net.masks.pathways`):
   :meth:`LanguageMasker.set_masks` replaces every language's mask between updates, and
   :meth:`LanguageMasker.set_grad_sinks` (opt-in, off by default) makes the backward add
   the squared gradient ``(∂L/∂W)²`` of every weight, taken before the mask is applied,
   into float32 sinks: the gradient of weights outside ``m^l``, which the optimizer never
   sees, for a regrow criterion. Without sinks nothing changes.

Memory: one bit per prunable weight and language (without the passes that read bits,
plus one byte per prunable weight for the active language); nothing weight-sized lives
through the forward and backward (the restore buffer, 32 MiB or the largest weight with its
``frozen`` state, lives only during the step). Time per step, in passes over the prunable
weights (:mod:`espnet_s3net.masks.mask_kernels`, each reading the mask in the pass):
``W ⊙ m`` twice per layer (forward, and recomputed in the backward), the gradient masked
once, and the restore is a copy and one select; in the one-byte form a language switch
also unpacks one language's bits. The alternative of zeroing the weights in place for the
whole step is a little cheaper in passes but keeps a weight-sized copy of the pruned values alive at the
activation peak.
"""

import logging
import weakref
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from espnet_s3net.masks.mask_file import PackedMask, SubnetMasks, parameter_fingerprint, unpack_bits
from espnet_s3net.masks.mask_kernels import Mask, mask_grad_, masked_weight, reads_bits, restore_

OPTIM_STATE_POLICIES = ("shared", "frozen")

#: bytes of prunable tensors updated and restored per chunk of an optimizer step on CPU:
#: the restore buffer's size (a weight that alone needs more grows it). 32 MiB is glibc's
#: largest mmap threshold, so the buffer is a mapping of its own, returned after the step.
RESTORE_CHUNK_BYTES = 32 << 20


def _aligned_bytes(t: torch.Tensor) -> int:
    """``t``'s bytes rounded up to 64 (the restore buffer's alignment)."""
    return (t.numel() * t.element_size() + 63) // 64 * 64


class _MaskedLinearFunction(torch.autograd.Function):
    """``x (W ⊙ m)ᵀ + b`` saving ``x``, ``W`` and ``m`` (its bits, for a packed mask; not the
    masked weight); with a ``sink`` (float32, W's shape) the backward adds the unmasked
    ``(∂L/∂W)²`` into it.

    ``scratch``: a buffer of W's dtype and shape, shared by the layers of that shape, into
    which ``W ⊙ m`` is written in the forward and again in the backward (one pass each,
    :mod:`espnet_s3net.masks.mask_kernels`): no weight-sized allocation per layer, which
    would fragment the heap between the saved activations. Under autocast the forward runs
    ``F.linear`` in the autocast dtype; the backward computes in the dtype of the incoming
    gradient, as autocast's own linear does.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mask, scratch, sink):
        packed = isinstance(mask, PackedMask)
        ctx.save_for_backward(x, weight, mask.bits if packed else mask)
        ctx.scratch, ctx.sink, ctx.packed = scratch, sink, packed
        ctx.has_bias = bias is not None
        return F.linear(x, masked_weight(weight, mask, scratch), bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mask = ctx.saved_tensors
        if ctx.packed:
            mask = PackedMask(mask, weight.shape)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            masked = masked_weight(weight, mask, ctx.scratch)
            grad_x = grad.matmul(masked.to(grad.dtype)).to(x.dtype)
        grad_2d = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            x_2d = x.reshape(-1, x.shape[-1]).to(grad.dtype)
            grad_w = grad_2d.t().matmul(x_2d).to(weight.dtype)
            mask_grad_(grad_w, mask, ctx.sink)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_2d.sum(0).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None, None


class MaskedLinear(torch.nn.Linear):
    """``nn.Linear`` that uses its weight through ``lang_mask`` (a
    :data:`~espnet_s3net.masks.mask_kernels.Mask`: the weight's bits, or uint8 0/1 of its
    shape; set by :class:`LanguageMasker` with a ``scratch`` buffer of the weight's shape
    and dtype; ``None``: the dense layer). While no language is active,
    ``inactive_error`` holds the message a forward raises: a model with sub-networks is
    never run dense by accident. ``grad_sink``: see :meth:`LanguageMasker.set_grad_sinks`."""

    lang_mask: Optional[Mask] = None
    scratch: Optional[torch.Tensor] = None
    inactive_error: Optional[str] = None
    grad_sink: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lang_mask is not None:
            return _MaskedLinearFunction.apply(x, self.weight, self.bias, self.lang_mask, self.scratch,
                                               self.grad_sink)
        if self.inactive_error is not None:
            raise RuntimeError(self.inactive_error)
        return F.linear(x, self.weight, self.bias)


class LanguageMasker:
    """Switches ``module``'s prunable weights between language sub-networks.

    Args:
        module: the model the masks were made for (e.g. an XLSRModel).
        masks: the per-language masks; checked against ``module``.
        missing: a language without a mask raises (``"error"``) or runs the dense
            model with a logged warning (``"dense"``).
        optim_state_policy: ``"shared"`` or ``"frozen"`` (see the module docstring).
    """

    def __init__(self, module: torch.nn.Module, masks: SubnetMasks, missing: str = "error",
                 optim_state_policy: str = "shared"):
        if missing not in ("error", "dense"):
            raise ValueError(f"missing must be 'error' or 'dense', got {missing!r}")
        if optim_state_policy not in OPTIM_STATE_POLICIES:
            raise ValueError(f"optim_state_policy must be one of {OPTIM_STATE_POLICIES}, "
                             f"got {optim_state_policy!r}")
        masks.check_model(module)
        self.module = module
        self.masks = masks
        self.missing = missing
        self.optim_state_policy = optim_state_policy
        self.layers: List[MaskedLinear] = [_as_masked_linear(module, name) for name in masks.names]
        self.params: List[torch.nn.Parameter] = [layer.weight for layer in self.layers]
        self.active: Optional[str] = None
        self._mask: Optional[List[Mask]] = None
        self._packed_split: Dict[str, List[PackedMask]] = {}  # where passes read bits: per language, per tensor
        self._packed_device: Optional[torch.device] = None  # where _packed_split's bits are
        self._packed: Dict[str, torch.Tensor] = {}  # elsewhere: every language's bits on the device
        self._unpacked_buffer: Optional[torch.Tensor] = None  # uint8 (numel,), see _masks_of
        self._scratch: Dict[tuple, torch.Tensor] = {}
        self._buffer: Optional[torch.Tensor] = None  # uint8, see _kept_views
        self._hidden: Optional[List[Optional[torch.Tensor]]] = None  # gradients hidden from the step
        self._optimizers = set()
        self._warned = set()
        self._stepped: List[Optional[tuple]] = [None] * len(self.params)  # grads the last step used
        self.deactivate()

    def _masks_of(self, lang: str) -> List[Mask]:
        """``lang``'s masks in ``masks.names`` order. Where the device's passes read bits
        (:func:`~espnet_s3net.masks.mask_kernels.reads_bits`: CPU with the C library, CUDA
        with Triton): its bits (:meth:`SubnetMasks.packed_split`; on CPU views of the mask
        file, on a GPU of every language's bits, moved there at the first activation).
        Elsewhere (no C compiler, no Triton): uint8 views of the unpacked buffer on the
        weights' device: one buffer, allocated at the first activation and refilled at
        every language switch, instead of a weight-count-sized allocation (fresh pages) per
        switch."""
        device = self.params[0].device
        if reads_bits(device):
            if self._packed_device != device:
                self._packed_split = {k: list(self.masks.packed_split(k, device).values())
                                      for k in self.masks.languages}
                self._packed_device = device
            return self._packed_split[lang]
        packed = self._packed.get(lang)
        if packed is None or packed.device != device:
            self._packed = {k: self.masks.packed(k).to(device) for k in self.masks.languages}
            packed = self._packed[lang]
        if self._unpacked_buffer is None or self._unpacked_buffer.device != device:
            self._unpacked_buffer = torch.empty(self.masks.numel, dtype=torch.uint8, device=device)
        flat = unpack_bits(packed, self.masks.numel, out=self._unpacked_buffer)
        return list(self.masks.split(flat).values())

    def activate(self, lang: str) -> None:
        """Use ``lang``'s sub-network from the next forward on."""
        if lang == self.active:
            return
        if lang not in self.masks.languages:
            if self.missing == "error":
                raise ValueError(f"no sub-network mask for language {lang!r}; masks exist for: "
                                 f"{', '.join(self.masks.languages)} ({self.masks.source})")
            if lang not in self._warned:
                logging.warning(f"no sub-network mask for language {lang!r}: using the dense model")
                self._warned.add(lang)
        if any(p.grad is not None for p in self.params):
            current = f"language {self.active}" if self.active else "the dense model"
            raise RuntimeError(
                f"switching from {current} to language {lang} while gradients are pending: "
                "an accumulation group must hold one language"
            )
        self.deactivate()
        if lang in self.masks.languages:
            self._mask = self._masks_of(lang)  # on CPU, builds the passes at the first activation
        self.active = lang
        self._set_layers(self._mask, None)

    def _set_layers(self, masks: Optional[List[torch.Tensor]], error: Optional[str]) -> None:
        """Give every layer its mask and scratch (``masks`` None: none, the dense layer) and
        the error its forward raises (None: it runs). Written into the layers' ``__dict__``:
        these are plain attributes, and ``nn.Module.__setattr__``, which first looks for a
        parameter, buffer or submodule of the name, added about 0.75 ms of Python to a switch
        on a 72-layer model, exposed on a GPU."""
        for i, layer in enumerate(self.layers):
            mask = None if masks is None else masks[i]
            scratch = None if mask is None else self._scratch_for(layer.weight)
            layer.__dict__.update(lang_mask=mask, scratch=scratch, inactive_error=error)

    def _scratch_for(self, weight: torch.Tensor) -> torch.Tensor:
        key = (weight.shape, weight.dtype, weight.device)
        if key not in self._scratch:
            self._scratch[key] = torch.empty_like(weight, requires_grad=False, memory_format=torch.contiguous_format)
        return self._scratch[key]

    def deactivate(self) -> None:
        """No language: the layers let go of the mask (its buffer stays for the next
        activation); a forward raises until :meth:`activate`."""
        error = (f"the model uses language sub-networks ({self.masks.source}) but no language is "
                 "active: give each utterance's language as data (<data dir>/utt2lang,lang,text) "
                 "or choose one (espnet_s3net.asr.inference.use_language)")
        self._set_layers(None, error)
        self._mask, self.active = None, None

    def _restored(self, optimizer: torch.optim.Optimizer, indices: Sequence[int]):
        """(tensors, masks) of the prunable weights ``indices`` and, with ``frozen``, their
        optimizer state tensors of the same shape, each with its mask."""
        tensors, masks = [], []
        for i in indices:
            p, mask = self.params[i], self._mask[i]
            tensors.append(p)
            masks.append(mask)
            if self.optim_state_policy == "frozen":
                for value in optimizer.state.get(p, {}).values():
                    if torch.is_tensor(value) and value.shape == p.shape and value.is_floating_point():
                        tensors.append(value)
                        masks.append(mask)
        return tensors, masks

    def _chunks(self, optimizer: torch.optim.Optimizer) -> List[List[int]]:
        """Indices of the prunable weights ``optimizer`` updates in this step (those with a
        gradient), grouped so that a group's restored tensors fit in RESTORE_CHUNK_BYTES (a
        weight that alone needs more is a group of its own). Off the CPU, one group: CUDA's
        caching allocator hands a freed block out again without new pages, and one group
        launches the fewest kernels."""
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        budget = RESTORE_CHUNK_BYTES if self.params[0].device.type == "cpu" else float("inf")
        chunks, size = [[]], 0
        for i, p in enumerate(self.params):
            if p.grad is None or id(p) not in owned:
                continue
            need = sum(_aligned_bytes(t) for t in self._restored(optimizer, [i])[0])
            if chunks[-1] and size + need > budget:
                chunks.append([])
                size = 0
            chunks[-1].append(i)
            size += need
        return [chunk for chunk in chunks if chunk]

    def _kept_views(self, tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Flat views, one per tensor (its dtype and size), of the step's restore buffer
        (allocated at the step's first chunk, grown to its largest)."""
        sizes = [_aligned_bytes(t) for t in tensors]
        device = tensors[0].device
        if self._buffer is None or self._buffer.numel() < sum(sizes):
            size = max(sum(sizes), RESTORE_CHUNK_BYTES if device.type == "cpu" else 0)
            self._buffer = torch.empty(size, dtype=torch.uint8, device=device)
        views, start = [], 0
        for t, size in zip(tensors, sizes):
            views.append(self._buffer[start:start + t.numel() * t.element_size()].view(t.dtype))
            start += size
        return views

    def _before_step(self, optimizer, args, kwargs) -> None:
        """Update the prunable weights here, a chunk at a time: keep the chunk's tensors in
        the restore buffer, run the optimizer's update (without its hooks) with only the
        chunk's gradients visible, put the tensors back outside the mask. Their gradients
        are then hidden from the optimizer's own step, which updates the other parameters;
        :meth:`_after_step` gives them back. The optimizer must update each parameter from its
        own gradient and state and leave parameters without a gradient alone (every
        ``torch.optim`` optimizer does)."""
        if self._mask is None:
            return
        if len(args) > 1 or kwargs.get("closure") is not None:
            raise RuntimeError("masked training steps the optimizer without a closure")
        update = getattr(type(optimizer).step, "__wrapped__", None)
        if update is None:
            raise RuntimeError(f"{type(optimizer).__name__}.step is not a torch.optim.Optimizer step with hooks")
        chunks = self._chunks(optimizer)
        grads = [p.grad for p in self.params]
        prunable = {id(p) for p in self.params}
        others = [p for group in optimizer.param_groups for p in group["params"]
                  if id(p) not in prunable and p.grad is not None]
        other_grads = [p.grad for p in others]
        for p in [*self.params, *others]:
            p.grad = None
        try:
            with torch.no_grad():
                for chunk in chunks:
                    for i in chunk:
                        self.params[i].grad = grads[i]
                    tensors, masks = self._restored(optimizer, chunk)
                    kept = self._kept_views(tensors)
                    torch._foreach_copy_(kept, [t.reshape(-1) for t in tensors])
                    update(*args, **kwargs)
                    for t, m, k in zip(tensors, masks, kept):
                        restore_(t, k.view(t.shape), m)
                    for i in chunk:
                        self.params[i].grad = None
        except BaseException:
            for p, grad in zip(self.params, grads):
                p.grad = grad
            raise
        finally:
            for p, grad in zip(others, other_grads):
                p.grad = grad
            self._buffer = None  # nothing of the step outlives it
        self._hidden = grads

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self._hidden is not None:
            for p, grad in zip(self.params, self._hidden):
                p.grad = grad
            self._hidden = None
        self._stepped = [None if p.grad is None else (weakref.ref(p.grad), p.grad._version) for p in self.params]

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep weights outside the active mask unchanged by ``optimizer``'s steps
        (once per optimizer)."""
        if id(optimizer) not in self._optimizers:
            optimizer.register_step_pre_hook(self._before_step)
            optimizer.register_step_post_hook(self._after_step)
            self._optimizers.add(id(optimizer))

    def _gradients_pending(self) -> bool:
        """Whether a prunable weight holds a gradient that no step of an attached optimizer
        has used (a new tensor, or one changed in place since that step)."""
        return any(p.grad is not None and (used is None or used[0]() is not p.grad or used[1] != p.grad._version)
                   for p, used in zip(self.params, self._stepped))

    def set_masks(self, masks: SubnetMasks) -> None:
        """Replace every language's mask by ``masks`` (same tensors, same languages), e.g. a
        pathway schedule's next round; the active language's sub-network is refreshed.
        Allowed between an optimizer step and the next backward (e.g. from ``count_update``),
        refused while gradients masked by the old masks are pending."""
        if masks.names != self.masks.names or masks.languages != self.masks.languages:
            raise ValueError(f"new masks ({masks.source}) cover other tensors or languages than the current "
                             f"ones ({self.masks.source}): masks are replaced for the same sub-networks")
        masks.check_model(self.module)
        if self._gradients_pending():
            raise RuntimeError("masks changed while gradients are pending: change them after an optimizer "
                               "step and before the next backward")
        self.masks = masks
        self._packed, self._packed_split, self._packed_device = {}, {}, None
        if self._mask is not None:
            self._mask = self._masks_of(self.active)
            self._set_layers(self._mask, None)

    def set_grad_sinks(self, sinks: Optional[Sequence[torch.Tensor]]) -> None:
        """Opt-in: while set, every backward through a mask adds ``(∂L/∂W)²`` of the prunable
        weights, before the mask is applied (in loss-scaled units under a GradScaler), into
        ``sinks`` (float32, one per tensor in ``masks.names`` order, the weights' shapes and
        device). ``None`` (the default): off, the backward is unchanged."""
        sinks = [None] * len(self.layers) if sinks is None else list(sinks)
        if len(sinks) != len(self.layers):
            raise ValueError(f"{len(sinks)} gradient sinks for {len(self.layers)} masked tensors")
        for layer, sink in zip(self.layers, sinks):
            if sink is not None and sink.shape != layer.weight.shape:
                raise ValueError(f"gradient sink of shape {tuple(sink.shape)} for a weight of shape "
                                 f"{tuple(layer.weight.shape)}")
            layer.grad_sink = sink

    def source_fingerprint_matches(self, module: torch.nn.Module) -> bool:
        """Whether ``module``'s prunable weights are those the masks were extracted from."""
        return parameter_fingerprint(module, self.masks.names) == self.masks.meta.get("source_fingerprint")


def _as_masked_linear(module: torch.nn.Module, name: str) -> MaskedLinear:
    """The ``nn.Linear`` owning parameter ``name`` of ``module``, turned into a MaskedLinear."""
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    if attr != "weight" or not isinstance(owner, torch.nn.Linear):
        raise ValueError(f"prunable tensor {name} is not the weight of an nn.Linear "
                         f"({type(owner).__name__}.{attr}): only linear weights can be language-masked")
    if not isinstance(owner, MaskedLinear):
        owner.__class__ = MaskedLinear
    return owner


def attach_masker(module: torch.nn.Module, masks: SubnetMasks, missing: str = "error",
                  optim_state_policy: str = "shared") -> LanguageMasker:
    """Create a masker for ``module`` and store it as ``module.language_masker`` (a module
    takes one masker: a second one is an error)."""
    if isinstance(getattr(module, "language_masker", None), LanguageMasker):
        raise ValueError(f"{type(module).__name__} already has language masks "
                         f"({module.language_masker.masks.source}): masks are put on a model once")
    masker = LanguageMasker(module, masks, missing, optim_state_policy)
    module.language_masker = masker
    return masker


def find_maskers(model: torch.nn.Module) -> List[LanguageMasker]:
    """Every masker attached to a submodule of ``model``."""
    return [m.language_masker for m in model.modules()
            if isinstance(getattr(m, "language_masker", None), LanguageMasker)]
