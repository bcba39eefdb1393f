"""ESPnet task for XLSR (wav2vec 2.0) contrastive pre-training.

The model is :class:`espnet_s3net.models.pretrain_model.XLSRPretrainModel`
built from ``--model_conf``; the only data is raw 16 kHz audio (``speech``).
Batches come from the single-language sampler when ``batch_type: lang_numel``
(the import of this module registers that batch type), and training runs in
:class:`LanguageMaskTrainer`, which applies language masks when the model
carries them and otherwise trains like ESPnet's Trainer.

Example::

    python -m espnet_s3net.bin.ssl_train --config conf/pretrain_xlsr_small.yaml \\
        --train_data_path_and_name_and_type dump/raw/train_multi/wav.scp,speech,sound \\
        --train_shape_file dump/raw/train_multi/utt2num_samples ...
"""

import argparse
import logging
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.class_choices import ClassChoices
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str_or_none
from typeguard import typechecked

from espnet_s3net.models.pretrain_model import XLSRPretrainModel
from espnet_s3net.samplers.language_iter_factory import LanguageSamplerTaskMixin
from espnet_s3net.train.masked_trainer import LanguageMaskTrainer


class XLSRPretrainTask(LanguageSamplerTaskMixin, AbsTask):
    """wav2vec 2.0 / XLSR pre-training on single-language batches."""

    num_optimizers: int = 1
    class_choices_list: List[ClassChoices] = []
    trainer = LanguageMaskTrainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default=dict(),
            help="Keyword arguments of XLSRPretrainModel: xlsr_conf (name of an "
            "XLSR configuration + overrides; default: the architecture of "
            "init_checkpoint, or xlsr_base without one), init_checkpoint, "
            "mask_file, mask_missing",
        )
        group.add_argument(
            "--init",
            type=str_or_none,
            default=None,
            help="Public checkpoint to start from: a fairseq wav2vec 2.0 / XLSR "
            ".pt file or a Hugging Face model directory (sets "
            "model_conf.init_checkpoint)",
        )

    @classmethod
    @typechecked
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]]:
        return None

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ()

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> XLSRPretrainModel:
        model_conf = dict(args.model_conf)
        init = getattr(args, "init", None)
        if init is not None:
            previous = model_conf.get("init_checkpoint")
            if previous is not None and previous != init:
                raise ValueError(
                    f"--init {init} conflicts with model_conf.init_checkpoint "
                    f"{previous}: give only one"
                )
            model_conf["init_checkpoint"] = init
        model = XLSRPretrainModel(**model_conf)
        logging.info(
            f"XLSRPretrainModel: {sum(p.numel() for p in model.parameters())} "
            "parameters"
        )
        return model
