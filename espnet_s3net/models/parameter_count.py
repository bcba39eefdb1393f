"""Parameter counts of a model for the paper's #params column: total, shared, per language.

The paper counts the whole pre-trained model (conv encoder, transformer, quantizer and
projection heads): XLSR-10 base 95M, large 317M; "+ adapter" 143M / 444M. An S3Net
model has exactly the parameters of the dense one: each language's sub-network is a mask
over the shared weights (0 extra parameters per language). Adapters and gates
(:mod:`espnet_s3net.models.language_modules`) are each language's own. A fine-tuning
frontend has no quantizer or projection heads (base: 94.4M).
"""

from dataclasses import dataclass, field
from typing import Dict

import torch

from espnet_s3net.masks.language_masker import find_maskers
from espnet_s3net.models.language_modules import find_language_modules


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a model, each tensor counted once.

    Attributes:
        total: all parameters (trainable or not).
        shared: those every language uses.
        per_language: for each language the model knows (masks or modules), the
            parameters only it uses (0 for S3Net sub-networks).
        method: what the model has per language: ``dense``, ``s3net``, ``adapter``,
            ``gating`` (``+``-joined when several).
    """

    total: int
    shared: int
    per_language: Dict[str, int] = field(default_factory=dict)
    method: str = "dense"

    @property
    def language_specific(self) -> int:
        """Parameters that belong to one language (``total - shared``)."""
        return self.total - self.shared

    def used_by(self, lang: str) -> int:
        """Parameters a batch of ``lang`` can use: the shared ones and its own."""
        return self.shared + self.per_language.get(lang, 0)

    def millions(self) -> str:
        """``total`` as the paper writes it (``95M``)."""
        return format_millions(self.total)


def format_millions(n: int) -> str:
    """``n`` parameters in millions: to the nearest million from 10M on (``143M``), with two
    decimals below (``0.76M``: small models would otherwise all read 0M or 1M)."""
    return f"{round(n / 1e6)}M" if n >= 9_999_500 else f"{n / 1e6:.2f}M"


def count_parameters(model: torch.nn.Module) -> ParameterCount:
    """The :class:`ParameterCount` of ``model`` (an XLSR model, a pre-training model, a
    frontend or a whole ASR model): its language modules give the per-language
    parameters, its language maskers the languages with sub-networks (0 extra each)."""
    total = sum(p.numel() for p in model.parameters())
    per_language: Dict[str, int] = {}
    methods = []
    for masker in find_maskers(model):
        methods.append("s3net")
        for lang in masker.masks.languages:
            per_language.setdefault(lang, 0)
    seen = set()
    for modules in find_language_modules(model):
        methods.append(modules.kind)
        for lang in modules.languages:
            own = [p for p in modules.language_parameters(lang) if id(p) not in seen]
            seen.update(id(p) for p in own)
            per_language[lang] = per_language.get(lang, 0) + sum(p.numel() for p in own)
    return ParameterCount(total=total, shared=total - sum(per_language.values()), per_language=per_language,
                          method="+".join(dict.fromkeys(methods)) or "dense")
