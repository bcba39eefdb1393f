"""ESPnet's ASR task with the ``s3net`` frontend, language data and the mask-aware trainer.

Importing this module registers into ESPnet's ASR task (its module-level class choices,
before any parser is built) the frontend ``s3net`` (:class:`S3NetFrontend`), the
encoder ``passthrough`` (:class:`PassthroughEncoder`) and the model ``distill_l2s``
(:class:`DistillL2SASRModel`: CTC with the Distill-L2S auxiliary loss, configured by
``model_conf.distill_l2s_conf``; its teacher reads the optional data input ``l2s_text``).
:class:`S3NetASRTask` is ESPnet's ``ASRTask`` plus :class:`LanguageTaskMixin` (the
``lang`` data input, ``--batch_type lang_numel``) and :class:`LanguageMaskTrainer` (which
trains like ESPnet's Trainer when the model has no ``s3net`` frontend and the data no
language). With the package
installed, ``espnet_s3net.plugin`` makes ESPnet's own ``espnet2.tasks.asr.ASRTask`` this
class, so ``python -m espnet2.bin.asr_train`` / ``asr_inference`` / ``pack`` use it.

The ``config.yaml`` a training writes is portable: the ``s3net`` frontend's
``ssl_config``/``ssl_model_file``/``init_checkpoint`` are replaced by the architecture
(``xlsr_conf``), as the weights are in the ASR checkpoint; the mask file stays. A
``distill_l2s`` model's ``distill_l2s_conf`` gets its resolved ``projection_size``, so
decoding builds the model without its text teacher.
"""

import argparse

from espnet2.tasks import asr as espnet_asr

from espnet_s3net import plugin
from espnet_s3net.asr.distill_l2s_model import (
    L2S_TEXT,
    DistillL2SASRModel,
    L2STextPreprocessor,
    teachers_loaded_at_build,
)
from espnet_s3net.asr.encoder.passthrough_encoder import PassthroughEncoder
from espnet_s3net.asr.frontend.s3net import S3NetFrontend
from espnet_s3net.tasks.language_task import LanguageTaskMixin
from espnet_s3net.train.masked_trainer import LanguageMaskTrainer

espnet_asr.frontend_choices.classes["s3net"] = S3NetFrontend
espnet_asr.encoder_choices.classes["passthrough"] = PassthroughEncoder
espnet_asr.model_choices.classes["distill_l2s"] = DistillL2SASRModel


class S3NetASRTask(LanguageTaskMixin, espnet_asr.ASRTask):
    """ESPnet's ASR task with language data, single-language batches and sub-networks."""

    trainer = LanguageMaskTrainer

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False):
        names = tuple(super().optional_data_names(train, inference))
        return names if inference else names + (L2S_TEXT,)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool):
        return L2STextPreprocessor(super().build_preprocess_fn(args, train))

    @classmethod
    def main_worker(cls, args: argparse.Namespace):
        # a model built for training loads its Distill-L2S teacher at once (bad teacher
        # directories fail before the first step); decoding builds models without one
        with teachers_loaded_at_build():
            return super().main_worker(args)

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        model = super().build_model(args)
        if isinstance(model.frontend, S3NetFrontend):
            args.frontend_conf = S3NetFrontend.portable_conf(args.frontend_conf, model.frontend.xlsr)
        if isinstance(model, DistillL2SASRModel):
            args.model_conf = {**args.model_conf, "distill_l2s_conf": model.portable_conf()}
        return model


if plugin.enabled():
    espnet_asr.ASRTask = S3NetASRTask
