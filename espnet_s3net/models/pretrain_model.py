"""The ESPnet model of the XLSR pre-training task (and of S3Net training)."""

from typing import Dict, Optional, Tuple

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_s3net.models.xlsr import XLSRConfig, XLSRModel, get_config


def xlsr_config(xlsr_conf: Dict) -> XLSRConfig:
    """XLSRConfig from ``{"name": <named config>, **field overrides}``."""
    conf = dict(xlsr_conf)
    if "name" not in conf:
        raise ValueError(f"xlsr_conf needs 'name' (one of the named configs), got {sorted(conf)}")
    return get_config(conf.pop("name"), **conf)


def build_xlsr(xlsr_conf: Optional[Dict], init_checkpoint: Optional[str] = None) -> XLSRModel:
    """XLSRModel from ``xlsr_conf`` (:func:`xlsr_config`), loaded from ``init_checkpoint``
    if given: a public checkpoint (fairseq ``.pt`` file or Hugging Face directory) whose
    architecture, without ``xlsr_conf``, is read from it and, with it, must match it."""
    if init_checkpoint is None:
        if not xlsr_conf:
            raise ValueError("building an XLSR model needs xlsr_conf or init_checkpoint")
        return XLSRModel(xlsr_config(xlsr_conf))
    from espnet_s3net.models.checkpoint_import import from_checkpoint

    return from_checkpoint(init_checkpoint, xlsr_config(xlsr_conf) if xlsr_conf else None)


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
    """

    def __init__(
        self,
        xlsr_conf: Optional[Dict] = None,
        init_checkpoint: Optional[str] = None,
        mask_file: Optional[str] = None,
        mask_missing: str = "error",
    ):
        super().__init__()
        if not xlsr_conf and init_checkpoint is None:
            xlsr_conf = {"name": "xlsr_base"}
        self.xlsr = build_xlsr(xlsr_conf, init_checkpoint)
        if mask_file is not None:
            from espnet_s3net.masks.mask_file import SubnetMasks
            from espnet_s3net.train.language_masker import attach_masker

            attach_masker(self.xlsr, SubnetMasks.load(mask_file), missing=mask_missing)

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
