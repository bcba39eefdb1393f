"""ESPnet ASR task with the ``s3net`` frontend, the language sampler and the mask-aware trainer.

Importing this module registers into ESPnet's ASR task (module-level class choices, before
any parser is built): the frontend ``s3net`` (:class:`S3NetFrontend`) and the encoder
``passthrough`` (the frontend's output as it is, for the paper's CTC head directly on
XLSR). ``S3NetASRTask`` adds ``--batch_type lang_numel`` (single-language batches) and
trains with :class:`LanguageMaskTrainer`. Standard ESPnet ASR configs work with
``frontend: s3net`` (e.g. a conformer encoder with CTC/attention).
"""

from typing import Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.tasks import asr as espnet_asr
from espnet2.tasks.asr import ASRTask

from espnet_s3net.frontends.s3net_frontend import S3NetFrontend
from espnet_s3net.samplers.language_iter_factory import LanguageSamplerTaskMixin
from espnet_s3net.train.masked_trainer import LanguageMaskTrainer


class PassthroughEncoder(AbsEncoder):
    """Identity encoder: (B, T, D) in, (B, T, D) out."""

    def __init__(self, input_size: int):
        super().__init__()
        self._output_size = input_size

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor,
                prev_states=None) -> Tuple[torch.Tensor, torch.Tensor, None]:
        return xs_pad, ilens, None


espnet_asr.frontend_choices.classes["s3net"] = S3NetFrontend
espnet_asr.encoder_choices.classes["passthrough"] = PassthroughEncoder


class S3NetASRTask(LanguageSamplerTaskMixin, ASRTask):
    """ESPnet's ASR task with single-language batches and language sub-networks."""

    trainer = LanguageMaskTrainer
