"""Put a language's sub-network mask on a model around each training step.

For a batch of language ``l`` (S3Net, language-adaptive training):

1. :meth:`LanguageMasker.activate` keeps the current prunable weights aside and
   sets ``W <- m^l ⊙ W`` in place, so forward and backward run with the
   sub-network;
2. tensor hooks multiply every gradient of a prunable weight by ``m^l`` *before*
   it is accumulated, so gradient clipping, DDP's all-reduce and the optimizer
   only see the masked gradient;
3. after every optimizer step (a step post-hook) the pruned entries are set to
   zero again, discarding whatever momentum or weight decay did to them;
4. :meth:`deactivate` (on a language switch, at the end of an epoch and before
   any ``state_dict``) writes the kept values back into the pruned entries.

Every prunable weight outside ``m^l`` is therefore bit-identical after the step;
weights outside every mask are never used. Optimizer state (e.g. Adam moments) of
pruned entries is not restored: it keeps decaying like for any zero gradient, so
their next update (by another language) is unaffected in direction and only
damped in momentum.
"""

import logging
from typing import Dict, List, Optional

import torch

from espnet_s3net.masks.mask_file import SubnetMasks


class LanguageMasker:
    """Switches ``module``'s prunable weights between language sub-networks.

    Args:
        module: the model the masks were made for (e.g. an XLSRModel).
        masks: the per-language masks; checked against ``module``.
        missing: a language without a mask raises (``"error"``) or runs the dense
            model with a logged warning (``"dense"``).
    """

    def __init__(self, module: torch.nn.Module, masks: SubnetMasks, missing: str = "error"):
        if missing not in ("error", "dense"):
            raise ValueError(f"missing must be 'error' or 'dense', got {missing!r}")
        masks.check_model(module)
        self.masks = masks
        self.missing = missing
        params = dict(module.named_parameters())
        self.params: List[torch.nn.Parameter] = [params[n] for n in masks.names]
        self.active: Optional[str] = None
        self._mask: Optional[List[torch.Tensor]] = None
        self._kept: Optional[List[torch.Tensor]] = None
        self._cache: Dict[str, List[torch.Tensor]] = {}
        self._optimizers = set()
        self._warned = set()
        for i, param in enumerate(self.params):
            param.register_hook(self._make_grad_hook(i))
        module.register_state_dict_pre_hook(lambda *args, **kwargs: self.deactivate())

    def _make_grad_hook(self, index: int):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            return grad if self._mask is None else grad * self._mask[index]

        return hook

    def _device_masks(self, lang: str) -> List[torch.Tensor]:
        if lang not in self._cache:
            dense = self.masks.dense(lang)
            self._cache[lang] = [dense[n].to(p.device) for n, p in zip(self.masks.names, self.params)]
        return self._cache[lang]

    def activate(self, lang: str) -> None:
        """Put ``lang``'s sub-network on the weights (restoring another one first)."""
        if lang == self.active:
            return
        if lang not in self.masks.languages:
            if self.missing == "error":
                raise ValueError(f"no sub-network mask for language {lang!r}; "
                                 f"masks exist for: {', '.join(self.masks.languages)}")
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
        if lang not in self.masks.languages:
            return
        mask = self._device_masks(lang)
        with torch.no_grad():
            self._kept = [p.detach().clone() for p in self.params]
            torch._foreach_mul_([p.data for p in self.params], mask)
        self._mask = mask
        self.active = lang

    def deactivate(self) -> None:
        """Restore the kept values at pruned entries: the weights are dense again."""
        if self._mask is None:
            self.active = None
            return
        with torch.no_grad():
            for p, m, kept in zip(self.params, self._mask, self._kept):
                p.data.copy_(torch.where(m, p.data, kept))
        self._mask, self._kept, self.active = None, None, None

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self._mask is not None:
            with torch.no_grad():
                torch._foreach_mul_([p.data for p in self.params], self._mask)

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Re-impose the mask after every step of ``optimizer`` (once per optimizer)."""
        if id(optimizer) not in self._optimizers:
            optimizer.register_step_post_hook(self._after_step)
            self._optimizers.add(id(optimizer))

    def source_fingerprint_matches(self, module: torch.nn.Module) -> bool:
        """Whether ``module``'s prunable weights are those the masks were extracted from."""
        from espnet_s3net.masks.mask_file import parameter_fingerprint

        self.deactivate()
        return parameter_fingerprint(module, self.masks.names) == self.masks.meta.get("source_fingerprint")


def attach_masker(module: torch.nn.Module, masks: SubnetMasks, missing: str = "error") -> LanguageMasker:
    """Create a masker for ``module`` and store it as ``module.language_masker``."""
    masker = LanguageMasker(module, masks, missing)
    module.language_masker = masker
    masker.module = module
    return masker


def find_maskers(model: torch.nn.Module) -> List[LanguageMasker]:
    """Every masker attached to a submodule of ``model``."""
    return [m.language_masker for m in model.modules() if isinstance(getattr(m, "language_masker", None), LanguageMasker)]
