"""The ESPnet model of the XLSR pre-training task (and of S3Net training)."""

import dataclasses
import logging
from typing import Dict, Optional, Tuple

import torch
import yaml
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_s3net.models.distill import HEADS_PREFIX
from espnet_s3net.models.xlsr import XLSRConfig, XLSRModel, get_config


def xlsr_config(xlsr_conf: Dict) -> XLSRConfig:
    """XLSRConfig from ``{"name": <named config>, **field overrides}``."""
    conf = dict(xlsr_conf)
    if "name" not in conf:
        raise ValueError(f"xlsr_conf needs 'name' (one of the named configs), got {sorted(conf)}")
    return get_config(conf.pop("name"), **conf)


def build_xlsr(
    xlsr_conf: Optional[Dict] = None,
    init_checkpoint: Optional[str] = None,
    ssl_config: Optional[str] = None,
    ssl_model_file: Optional[str] = None,
    mask_file: Optional[str] = None,
    mask_missing: str = "error",
    language_modules: Optional[Dict] = None,
    pathways: Optional[Dict] = None,
) -> XLSRModel:
    """The XLSR model of a task, with what it has per language: the one place where masks
    and language modules are put on a model.

    The weights come from one of: ``ssl_config`` + ``ssl_model_file`` (an experiment of
    our pre-training or S3Net training; its own masks are not attached, its language
    modules are, with their trained weights), ``init_checkpoint`` (a public fairseq ``.pt``
    file or Hugging Face directory, whose architecture is read from it and, with
    ``xlsr_conf``, must match it), or ``xlsr_conf`` alone (random init). With
    ``mask_file`` a :class:`LanguageMasker` is attached (``mask_missing``: ``"error"`` or
    ``"dense"`` for a language without a mask).

    ``language_modules`` (``{type: adapter|gating, languages: [...], ...}``, see
    :mod:`espnet_s3net.models.language_modules`) puts new per-language adapters or gates
    after the transformer layers (an identity at the start). An experiment trained with
    language modules brings its own; giving ``language_modules`` too is then only
    allowed when it describes the same ones. Masks and language modules compose: the
    masks cover the shared transformer weights, the modules are each language's own, and
    a batch of language ``l`` runs ``l``'s sub-network and ``l``'s modules.

    ``pathways`` (:class:`~espnet_s3net.masks.pathways.PathwayConfig` fields, plus
    ``languages``) learns the masks during training: a
    :class:`~espnet_s3net.masks.pathways.PathwaySchedule` is put on the model as
    ``xlsr.pathway_schedule``, starting from ``mask_file`` or, without it, from all-ones
    masks (over the default prunable tensors) for ``languages``; the current masks are
    in its buffers, so a trained model's state dict brings its final masks.
    """
    if ssl_config is not None:
        xlsr = _load_experiment_xlsr(ssl_config, ssl_model_file)
    elif init_checkpoint is not None:
        from espnet_s3net.models.checkpoint_import import from_checkpoint

        xlsr = from_checkpoint(init_checkpoint, xlsr_config(xlsr_conf) if xlsr_conf else None)
    elif xlsr_conf:
        xlsr = XLSRModel(xlsr_config(xlsr_conf))
    else:
        raise ValueError("building an XLSR model needs ssl_config + ssl_model_file, init_checkpoint or xlsr_conf")
    if language_modules is not None:
        _attach_language_modules(xlsr, language_modules, ssl_config)
    if pathways is not None:
        _attach_pathways(xlsr, pathways, mask_file, mask_missing)
    elif mask_file is not None:
        from espnet_s3net.masks.language_masker import attach_masker
        from espnet_s3net.masks.mask_file import SubnetMasks

        attach_masker(xlsr, SubnetMasks.load(mask_file), missing=mask_missing)
    return xlsr


def _attach_pathways(xlsr: XLSRModel, conf: Dict, mask_file: Optional[str], mask_missing: str) -> None:
    """Put a masker with the initial pathways (``mask_file``, or all ones for
    ``conf["languages"]``) and its schedule (``xlsr.pathway_schedule``) on ``xlsr``."""
    from espnet_s3net.masks.language_masker import attach_masker
    from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
    from espnet_s3net.masks.pathways import PathwayConfig, PathwaySchedule
    from espnet_s3net.masks.pruning import prunable_parameters

    conf = dict(conf)
    languages = conf.pop("languages", None)
    config = PathwayConfig(**conf)
    if mask_file is not None:
        masks = SubnetMasks.load(mask_file)
        if languages is not None and sorted(languages) != masks.languages:
            raise ValueError(f"pathways.languages {sorted(languages)} are not the languages of {masks.source} "
                             f"{masks.languages}: leave pathways.languages out to use the mask file's")
    elif not languages:
        raise ValueError("pathways without mask_file start every language's pathway dense: list the "
                         "languages trained in pathways.languages (or give the initial pathways as mask_file)")
    else:
        params = prunable_parameters(xlsr)
        ones = {name: torch.ones(p.shape, dtype=torch.bool) for name, p in params.items()}
        masks = SubnetMasks.from_dense({lang: ones for lang in languages},
                                       {"source_fingerprint": parameter_fingerprint(xlsr, list(params))})
    xlsr.pathway_schedule = PathwaySchedule(attach_masker(xlsr, masks, missing=mask_missing), config)


def _attach_language_modules(xlsr: XLSRModel, conf: Dict, ssl_config: Optional[str]) -> None:
    """Put the language modules of ``conf`` on ``xlsr``; if it has some already (trained
    in the experiment ``ssl_config``), check that ``conf`` describes them."""
    from espnet_s3net.models.language_modules import build_language_modules

    modules = build_language_modules(conf, xlsr.cfg.embed_dim, xlsr.cfg.num_layers)
    if xlsr.language_modules is not None:
        if modules.conf() != xlsr.language_modules.conf():
            raise ValueError(f"{ssl_config} was trained with language_modules {xlsr.language_modules.conf()}, "
                             f"not {modules.conf()}: leave language_modules out to use the trained ones")
        return
    if ssl_config is not None:
        logging.info(f"{ssl_config} has no language modules: new {modules.kind}s for "
                     f"{', '.join(modules.languages)} (identity at the start)")
    xlsr.language_modules = modules


def _load_experiment_xlsr(ssl_config: str, ssl_model_file: Optional[str]) -> XLSRModel:
    """The XLSR model of a pre-training / S3Net experiment (``config.yaml`` + checkpoint),
    dense: the masks its config names are left to the caller's ``mask_file``; its language
    modules (``model_conf.language_modules``) are built and loaded with the trained weights."""
    if ssl_model_file is None:
        raise ValueError("ssl_config needs ssl_model_file")
    with open(ssl_config, encoding="utf-8") as f:
        model_conf = dict((yaml.safe_load(f) or {}).get("model_conf") or {})
    trained_with = model_conf.pop("mask_file", None)
    model_conf.pop("mask_missing", None)
    if trained_with is not None:
        logging.info(f"{ssl_config} was trained with the masks {trained_with}; they are used only "
                     "where mask_file names them")
    model = XLSRPretrainModel(**model_conf)
    state = torch.load(ssl_model_file, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.xlsr


def portable_xlsr_conf(xlsr: XLSRModel) -> Dict:
    """``xlsr_conf`` that rebuilds ``xlsr``'s architecture and settings without the files it
    was loaded from (configs written after training then need only the trained checkpoint).
    Its language modules are described by :func:`portable_language_modules_conf`."""
    return {"name": "xlsr_base", **{k: _yaml_plain(v) for k, v in dataclasses.asdict(xlsr.cfg).items()}}


def portable_language_modules_conf(xlsr: XLSRModel) -> Optional[Dict]:
    """``language_modules`` that rebuilds ``xlsr``'s language modules (None without any)."""
    return None if xlsr.language_modules is None else xlsr.language_modules.conf()


def _yaml_plain(value):
    """Tuples (also nested) as lists: ESPnet's safe YAML dump takes no tuples."""
    return [_yaml_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _drop_training_only(state_dict, prefix, *args) -> None:
    """Load pre-hook: a distillation checkpoint (:mod:`espnet_s3net.models.distill`) is the
    student as ``xlsr.*`` plus its prediction heads (``distill_heads.*``, training only),
    which a pre-trained XLSR model does not have: they are left out."""
    for key in [k for k in state_dict if k.startswith(prefix + HEADS_PREFIX)]:
        del state_dict[key]


def find_xlsr(model: torch.nn.Module) -> XLSRModel:
    """The first XLSRModel inside ``model`` (a task model, a frontend, ...)."""
    for module in model.modules():
        if isinstance(module, XLSRModel):
            return module
    raise ValueError(f"{type(model).__name__} contains no XLSRModel")


class XLSRPretrainModel(AbsESPnetModel):
    """wav2vec 2.0 contrastive pre-training of an XLSR model, for ESPnet's trainer.

    Args:
        xlsr_conf: named XLSR configuration plus overrides, e.g. ``{"name": "xlsr_base"}``;
            ``xlsr_base`` if neither it nor ``init_checkpoint`` is given.
        init_checkpoint: start from a public checkpoint (local fairseq ``.pt`` file or
            Hugging Face wav2vec2 directory); without ``xlsr_conf`` its architecture and
            training settings are read from it, with it every architecture field must match.
        mask_file: per-language sub-network masks (S3Net training); a
            ``LanguageMasker`` is attached to the XLSR model.
        mask_missing: ``"error"`` or ``"dense"`` for a language without a mask.
        language_modules: per-language adapters or gates after the transformer layers,
            trained with the model (``{type: adapter, languages: [es, fr], bottleneck:
            256}`` or ``{type: gating, languages: [...]}``; see
            :mod:`espnet_s3net.models.language_modules`).
    """

    def __init__(
        self,
        xlsr_conf: Optional[Dict] = None,
        init_checkpoint: Optional[str] = None,
        mask_file: Optional[str] = None,
        mask_missing: str = "error",
        language_modules: Optional[Dict] = None,
    ):
        super().__init__()
        if not xlsr_conf and init_checkpoint is None:
            xlsr_conf = {"name": "xlsr_base"}
        self.xlsr = build_xlsr(xlsr_conf, init_checkpoint, mask_file=mask_file, mask_missing=mask_missing,
                               language_modules=language_modules)
        # checkpoints of a distilled student (espnet_s3net.models.distill) load as they are
        self._register_load_state_dict_pre_hook(_drop_training_only)

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Loss, statistics and batch weight of a batch of waveforms (B, S) at 16 kHz."""
        out = self.xlsr.forward_pretrain(speech, speech_lengths)
        stats = dict(
            loss=out.loss.detach(), loss_contrastive=out.contrastive.detach(),
            loss_diversity=out.diversity.detach(), loss_features=out.feature_penalty.detach(),
            acc=out.accuracy.detach(), code_ppl=out.code_perplexity.detach(),
            prob_ppl=out.prob_perplexity.detach(),
            temp=torch.tensor(out.temperature), n_masked=torch.tensor(float(out.num_masked)),
        )
        loss, stats, weight = force_gatherable((out.loss, stats, speech.shape[0]), out.loss.device)
        return loss, stats, weight

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        return {}
