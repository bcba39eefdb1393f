"""Language-specific modules of an XLSR model: the adaptation baselines S3Net is compared with.

S3Net gives each language a sparse sub-network of the shared weights (no extra
parameter). The methods the paper compares it with (Lu et al., ICASSP 2022, "+ gating
network" and "+ adapter") add language-specific parameters instead; both kinds here sit after
every transformer layer and are trained in the same language-adaptive (continued)
pre-training stage as S3Net, then kept for CTC fine-tuning and decoding:

- ``adapter`` (:class:`LanguageAdapters`): a residual bottleneck adapter per language
  and layer, ``x + W_up act(W_down LN(x))`` (Houlsby et al., 2019, "Parameter-Efficient
  Transfer Learning for NLP"; per language as in Kannan et al., 2019, "Large-Scale
  Multilingual Speech Recognition with a Streaming End-to-End Model"). ``W_up`` and its
  bias start at zero, so the model starts as the pre-trained one. With bottleneck 256
  and 10 languages it adds 47.5M parameters to XLSR base (95.0M -> 142.5M) and 126.6M to
  XLSR large (317.4M -> 444.0M): the paper's 143M and 444M.
- ``gating`` (:class:`LanguageGates`): a learned per-language gate on each layer's
  output channels, ``x ⊙ 2σ(g_l)``. The paper's table shows only that its gating network
  adds no parameter worth counting (95M / 317M, as the model without it); this is the
  smallest gating of that kind. The ``2σ(·)`` amplitude with ``g_l = 0`` at the start is
  that of LHUC (Swietojanski & Renals, 2014, "Learning Hidden Unit Contributions for
  Unsupervised Speaker Adaptation of Neural Network Acoustic Models"): every gate starts
  at exactly 1, so the model starts as the pre-trained one, on the sigmoid's steepest
  slope (not a saturated one), and may learn to damp (→ 0) or amplify (→ 2) a channel for
  its language. Adds ``languages × layers × dim`` parameters: 92K to XLSR base (95.1M)
  and 246K to XLSR large (317.6M) with 10 languages.

Both are :class:`~espnet_s3net.train.language_data.LanguageConditioned`: the trainer and
ESPnet's iterators call ``activate(lang)`` before each batch (found by
``language_followers``); a forward with no active language raises. Each language's
parameters are tensors of their own, so in a step of language ``l`` the other languages'
parameters get no gradient (``grad`` stays None): optimizers skip them entirely (SGD,
Adam and AdamW alike, weight decay and momentum included), so they stay bit-identical.
Only when gradients are zeroed instead of set to None (``zero_grad(set_to_none=False)``)
does an optimizer with momentum (Adam) keep moving them with stale moments.

Configuration (``language_modules`` of ``build_xlsr``, the pre-training ``model_conf``
and the ``s3net`` frontend)::

    language_modules: {type: adapter, languages: [es, fr, it], bottleneck: 256}
    language_modules: {type: gating, languages: [es, fr, it]}

Options: ``languages`` (required, the ids the data's ``utt2lang`` uses), ``layers``
(1-based transformer layers that get a module; default all), adapter only:
``bottleneck`` (256), ``activation`` (``relu`` | ``gelu``), ``layer_norm`` (true).
"""

import logging
from typing import Dict, List, Optional, Sequence

import torch

from espnet_s3net.train.language_data import LanguageConditioned

LANGUAGE_MODULE_TYPES = ("adapter", "gating")
_OPTIONS = {
    "adapter": {"type", "languages", "layers", "bottleneck", "activation", "layer_norm"},
    "gating": {"type", "languages", "layers"},
}
_ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU}


class LanguageModules(torch.nn.Module, LanguageConditioned):
    """Per-language modules applied after transformer layers (see the module docstring).

    Args:
        languages: the language ids that have modules.
        dim: the transformer's width.
        num_layers: the transformer's depth.
        layers: 1-based layers that get a module (default: all).

    ``missing``: what :meth:`activate` does for a language without modules: ``"error"``
    (default) or ``"dense"`` (the shared model alone, with a logged warning; decoding sets
    it through ``espnet_s3net.asr.inference.use_language``).
    """

    kind = ""
    noun = ""   # what a language has, in messages ("adapters", "gates")

    def __init__(self, languages: Sequence[str], dim: int, num_layers: int, layers: Optional[Sequence[int]] = None):
        super().__init__()
        if isinstance(languages, str):   # "es fr it" or "es,fr,it" (command lines)
            languages = languages.replace(",", " ").split()
        languages = list(languages)
        if not languages:
            raise ValueError(f"language_modules ({self.kind}) needs a non-empty list of languages")
        for lang in languages:
            if not isinstance(lang, str) or not lang or "." in lang:
                raise ValueError(f"language_modules: language id {lang!r} must be a non-empty string without '.'")
        if len(set(languages)) != len(languages):
            raise ValueError(f"language_modules: languages repeat: {languages}")
        layers = list(range(1, num_layers + 1)) if layers is None else [int(i) for i in layers]
        if not layers or len(set(layers)) != len(layers) or not all(1 <= i <= num_layers for i in layers):
            raise ValueError(f"language_modules: layers must be distinct 1-based indices of the {num_layers} "
                             f"transformer layers, got {layers}")
        self.languages = tuple(languages)
        self.dim = dim
        self.num_layers = num_layers
        self.layers = tuple(sorted(layers))
        self._slot = {layer: k for k, layer in enumerate(self.layers)}
        self.missing = "error"
        self.active: Optional[str] = None
        self._use: Optional[str] = None   # the active language's key, None: shared model only
        self._warned = set()

    # LanguageConditioned
    def activate(self, lang: str) -> None:
        """Use ``lang``'s modules from the next forward on."""
        if lang not in self.languages:
            if self.missing != "dense":
                raise ValueError(f"{type(self).__name__}: no {self.noun} for language {lang!r}; the model has "
                                 f"them for: {', '.join(self.languages)}")
            if lang not in self._warned:
                logging.warning(f"{type(self).__name__}: no {self.noun} for language {lang!r}: "
                                "using the shared model alone")
                self._warned.add(lang)
        self.active = lang
        self._use = lang if lang in self.languages else None

    def deactivate(self) -> None:
        """No language: a forward raises until :meth:`activate`."""
        self.active = self._use = None

    def forward(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """``x`` (B, T, D), the output of transformer layer ``layer`` (1-based), through the
        active language's module of that layer."""
        if self.active is None:
            raise RuntimeError(
                f"{type(self).__name__}: the model has language {self.noun} ({', '.join(self.languages)}) but no "
                "language is active: give each utterance's language as data (<data dir>/utt2lang,lang,text) "
                "or choose one (espnet_s3net.asr.inference.use_language)")
        slot = self._slot.get(layer)
        if self._use is None or slot is None:
            return x
        return self._language_forward(x, self._use, slot)

    def _language_forward(self, x: torch.Tensor, lang: str, slot: int) -> torch.Tensor:
        raise NotImplementedError

    def language_parameters(self, lang: str) -> List[torch.nn.Parameter]:
        """The parameters only ``lang`` uses."""
        raise NotImplementedError

    def conf(self) -> Dict:
        """The ``language_modules`` configuration that rebuilds this module."""
        conf = {"type": self.kind, "languages": list(self.languages)}
        if self.layers != tuple(range(1, self.num_layers + 1)):
            conf["layers"] = list(self.layers)
        return conf

    def unused_parameters_reason(self) -> Optional[str]:
        """Why a training step leaves parameters without gradient (DDP)."""
        if len(self.languages) > 1:
            return f"a step trains one language's {self.noun}, the other languages' get no gradient"
        return None

    def extra_repr(self) -> str:
        return f"languages={list(self.languages)}, layers={list(self.layers)}"


class _Adapter(torch.nn.Module):
    """``x + up(act(down(LN(x))))``, ``up`` zero-initialised (an identity at the start)."""

    def __init__(self, dim: int, bottleneck: int, activation: str, layer_norm: bool):
        super().__init__()
        self.layer_norm = torch.nn.LayerNorm(dim) if layer_norm else None
        self.down = torch.nn.Linear(dim, bottleneck)
        self.activation = _ACTIVATIONS[activation]()
        self.up = torch.nn.Linear(bottleneck, dim)
        with torch.no_grad():
            torch.nn.init.normal_(self.down.weight, mean=0.0, std=0.02)
            torch.nn.init.zeros_(self.down.bias)
            torch.nn.init.zeros_(self.up.weight)
            torch.nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer_norm(x) if self.layer_norm is not None else x
        return x + self.up(self.activation(self.down(h)))


class LanguageAdapters(LanguageModules):
    """A residual bottleneck adapter per language and layer (see the module docstring).

    Args (besides :class:`LanguageModules`'s): bottleneck: the adapter's inner width;
    activation: ``relu`` or ``gelu``; layer_norm: a LayerNorm at the adapter's input.
    Parameters: ``adapters.<lang>.<k>`` for the k-th layer of ``layers``.
    """

    kind = "adapter"
    noun = "adapters"

    def __init__(self, languages: Sequence[str], dim: int, num_layers: int, layers: Optional[Sequence[int]] = None,
                 bottleneck: int = 256, activation: str = "relu", layer_norm: bool = True):
        super().__init__(languages, dim, num_layers, layers)
        if int(bottleneck) < 1:
            raise ValueError(f"language_modules: bottleneck must be a positive width, got {bottleneck}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"language_modules: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.bottleneck, self.activation, self.layer_norm = int(bottleneck), activation, bool(layer_norm)
        self.adapters = torch.nn.ModuleDict({
            lang: torch.nn.ModuleList(_Adapter(dim, self.bottleneck, activation, self.layer_norm)
                                      for _ in self.layers)
            for lang in self.languages
        })

    def _language_forward(self, x: torch.Tensor, lang: str, slot: int) -> torch.Tensor:
        return self.adapters[lang][slot](x)

    def language_parameters(self, lang: str) -> List[torch.nn.Parameter]:
        return list(self.adapters[lang].parameters())

    def conf(self) -> Dict:
        return {**super().conf(), "bottleneck": self.bottleneck, "activation": self.activation,
                "layer_norm": self.layer_norm}


class LanguageGates(LanguageModules):
    """A learned gate ``2σ(g)`` per language on each layer's output channels, ``g = 0`` at
    the start (gate 1: the pre-trained model). Parameters: ``gates.<lang>`` of shape
    (len(layers), dim)."""

    kind = "gating"
    noun = "gates"

    def __init__(self, languages: Sequence[str], dim: int, num_layers: int, layers: Optional[Sequence[int]] = None):
        super().__init__(languages, dim, num_layers, layers)
        self.gates = torch.nn.ParameterDict({
            lang: torch.nn.Parameter(torch.zeros(len(self.layers), dim)) for lang in self.languages
        })

    def gate(self, lang: str) -> torch.Tensor:
        """``lang``'s gates (len(layers), dim), in (0, 2)."""
        return 2.0 * torch.sigmoid(self.gates[lang])

    def _language_forward(self, x: torch.Tensor, lang: str, slot: int) -> torch.Tensor:
        return x * (2.0 * torch.sigmoid(self.gates[lang][slot])).to(x.dtype)

    def language_parameters(self, lang: str) -> List[torch.nn.Parameter]:
        return [self.gates[lang]]


_CLASSES = {"adapter": LanguageAdapters, "gating": LanguageGates}


def build_language_modules(conf: Dict, dim: int, num_layers: int) -> LanguageModules:
    """The language modules of ``conf`` (``{type: adapter|gating, languages: [...], ...}``)
    for a transformer of width ``dim`` and depth ``num_layers``; unknown types or options
    raise ``ValueError``."""
    if not isinstance(conf, dict):
        raise ValueError(f"language_modules must be a mapping like {{type: adapter, languages: [es, fr]}}, "
                         f"got {conf!r}")
    conf = dict(conf)
    kind = conf.pop("type", None)
    if kind not in _CLASSES:
        raise ValueError(f"language_modules: type must be one of {', '.join(LANGUAGE_MODULE_TYPES)}, got {kind!r}")
    unknown = sorted(set(conf) - _OPTIONS[kind])
    if unknown:
        raise ValueError(f"language_modules: unknown option(s) {unknown} for type {kind}; "
                         f"options: {', '.join(sorted(_OPTIONS[kind] - {'type'}))}")
    if "languages" not in conf:
        raise ValueError(f"language_modules ({kind}) needs languages: the ids of the data's utt2lang")
    return _CLASSES[kind](dim=dim, num_layers=num_layers, **conf)


def find_language_modules(model: torch.nn.Module) -> List[LanguageModules]:
    """Every :class:`LanguageModules` inside ``model``."""
    return [m for m in model.modules() if isinstance(m, LanguageModules)]
