"""The ``s3net`` ESPnet frontend: a (sparse-shared) XLSR model as an ASR frontend.

The XLSR model comes from one of
- ``ssl_config`` + ``ssl_model_file``: a checkpoint of our pre-training or S3Net training
  (``exp/xlsr_pretrain``, ``exp/s3net_<method>``);
- ``init_checkpoint``: a public fairseq ``.pt`` file or Hugging Face directory, whose
  architecture is read from the checkpoint (fairseq ``cfg.model``/``args``, HF
  ``config.json``); an ``xlsr_conf`` given as well must agree with it field by field;
- ``xlsr_conf`` alone: a named configuration (from scratch, or the architecture that
  ``config.yaml`` of a fine-tuned model records, whose weights are in its checkpoint).

With ``mask_file`` each language's sub-network is used: the language of every batch is
an ordinary data input (``utt2lang,lang,text``), which the trainer and ESPnet's inference
turn into the active mask. Language modules (per-language adapters or gates after the
transformer layers, :mod:`espnet_s3net.models.language_modules`) follow the language
the same way: those an ``ssl_config`` experiment was trained with come with its weights;
``language_modules`` adds new ones to a model without any. A forward with no active
language is an error. Without a mask file or language modules this is a plain XLSR
frontend.

With ``pathways`` (ASR pathways, :mod:`espnet_s3net.masks.pathways`: ``target_sparsity``,
``rounds``, ``updates_per_round``, ... and ``languages``) every language's mask is pruned
(and regrown) during training, starting from ``mask_file`` or, without it, from all-ones
masks for ``pathways.languages``; the trainer writes each round's masks to
``<output_dir>/pathways/``. The current masks are part of the model's state dict, so
decoding a trained model uses its final masks with the same frontend config (no mask file
needed when training started from all ones).

Fine-tuning options as in XLSR: frozen conv feature encoder (its parameters get
``requires_grad=False``), transformer frozen for the first ``freeze_transformer_steps``
optimizer updates (counted by :meth:`S3NetFrontend.count_update`, which the trainer calls
once per optimizer step taken; forwards never advance it), wav2vec 2.0 time and channel
masking. Output: the last layer or a learned softmax-weighted sum of all layers; when
LayerDrop skips layers in training, the softmax is taken over the layers that ran.
"""

from typing import Dict, Optional, Tuple

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from espnet_s3net.models.pretrain_model import build_xlsr, portable_language_modules_conf, portable_xlsr_conf
from espnet_s3net.models.span_mask import span_mask


class S3NetFrontend(AbsFrontend):
    """XLSR / S3Net features for ESPnet ASR (see the module docstring).

    Input: waveform (B, S) at ``fs`` = 16 kHz and lengths (B,); output: (B, T, D) at 50 Hz.
    """

    def __init__(
        self,
        fs: int = 16000,
        xlsr_conf: Optional[Dict] = None,
        ssl_config: Optional[str] = None,
        ssl_model_file: Optional[str] = None,
        init_checkpoint: Optional[str] = None,
        mask_file: Optional[str] = None,
        mask_missing: str = "error",
        language_modules: Optional[Dict] = None,
        pathways: Optional[Dict] = None,
        layer_selection: str = "last",
        freeze_feature_encoder: bool = True,
        freeze_transformer_steps: int = 0,
        mask_time_prob: float = 0.0,
        mask_time_length: int = 10,
        mask_channel_prob: float = 0.0,
        mask_channel_length: int = 64,
    ):
        super().__init__()
        if fs != 16000:
            raise ValueError(f"the s3net frontend works at 16 kHz, got fs={fs}")
        if layer_selection not in ("last", "weighted_sum"):
            raise ValueError(f"layer_selection must be last or weighted_sum, got {layer_selection!r}")
        self.xlsr = build_xlsr(xlsr_conf, init_checkpoint, ssl_config, ssl_model_file, mask_file, mask_missing,
                               language_modules, pathways)
        # the pre-training heads are not used downstream
        self.xlsr.quantizer = self.xlsr.project_q = self.xlsr.final_proj = None
        self.layer_selection = layer_selection
        if layer_selection == "weighted_sum":
            self.layer_weights = torch.nn.Parameter(torch.zeros(self.xlsr.cfg.num_layers + 1))
        self.freeze_feature_encoder = freeze_feature_encoder
        self.xlsr.feature_extractor.requires_grad_(not freeze_feature_encoder)
        self.xlsr.mask_emb.requires_grad_(mask_time_prob > 0)  # used by time masking only
        self.freeze_transformer_steps = freeze_transformer_steps
        self.mask_time_prob, self.mask_time_length = mask_time_prob, mask_time_length
        self.mask_channel_prob, self.mask_channel_length = mask_channel_prob, mask_channel_length
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @staticmethod
    def portable_conf(frontend_conf: Dict, xlsr) -> Dict:
        """``frontend_conf`` with the files the weights came from (``ssl_config``,
        ``ssl_model_file``, ``init_checkpoint``) replaced by ``xlsr_conf`` and
        ``language_modules`` (the modules the model has, also those that came from the
        SSL experiment): the ASR checkpoint holds the weights, so decoding and packing
        need only it and the mask file."""
        conf = {k: v for k, v in frontend_conf.items()
                if k not in ("ssl_config", "ssl_model_file", "init_checkpoint", "language_modules")}
        conf["xlsr_conf"] = portable_xlsr_conf(xlsr)
        language_modules = portable_language_modules_conf(xlsr)
        if language_modules is not None:
            conf["language_modules"] = language_modules
        return conf

    def output_size(self) -> int:
        return self.xlsr.output_size()

    def unused_parameters_reason(self) -> Optional[str]:
        """Why a training step may leave parameters without gradient (DDP), or None."""
        if self.freeze_transformer_steps > 0:
            return f"freeze_transformer_steps {self.freeze_transformer_steps} trains no transformer weight at first"
        return None

    def count_update(self) -> None:
        """Advance the ``freeze_transformer_steps`` schedule by one optimizer update."""
        self.num_updates += 1

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, D) and frame lengths (B,) of waveforms (B, S) with lengths (B,)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_feature_encoder):
            features, frames = self.xlsr.extract_features(input, input_lengths)
        b, t, _ = features.shape
        time_mask = channel_mask = None
        if self.training and self.mask_time_prob > 0:
            time_mask = span_mask(b, t, self.mask_time_prob, self.mask_time_length, 2, frames, device=input.device)
        if self.training and self.mask_channel_prob > 0:
            channel_mask = span_mask(b, self.output_size(), self.mask_channel_prob, self.mask_channel_length,
                                     device=input.device)
        frozen = self.training and int(self.num_updates) < self.freeze_transformer_steps
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            states, layers = self.xlsr.encode_features(features, frames, time_mask, channel_mask)
        if self.layer_selection == "last":
            return states[-1], frames
        weights = torch.softmax(self.layer_weights[layers], 0)  # renormalised over the layers that ran
        return sum(w * h for w, h in zip(weights, states)), frames
