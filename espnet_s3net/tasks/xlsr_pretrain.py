"""ESPnet task for XLSR (wav2vec 2.0) contrastive pre-training.

The model is :class:`espnet_s3net.models.pretrain_model.XLSRPretrainModel`
built from ``--model_conf``; the only data is raw 16 kHz audio (``speech``).
The language of each utterance is the data input ``lang`` (``utt2lang``);
batches come from the single-language sampler when ``batch_type: lang_numel``,
and training runs in :class:`LanguageMaskTrainer`, which applies language masks
when the model carries them and otherwise trains like ESPnet's Trainer.

Example::

    python -m espnet_s3net.bin.ssl_train --config conf/pretrain_xlsr_small.yaml \\
        --train_data_path_and_name_and_type dump/raw/train_multi/wav.scp,speech,sound \\
        --train_data_path_and_name_and_type dump/raw/train_multi/utt2lang,lang,text \\
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

from espnet_s3net.models.pretrain_model import XLSRPretrainModel, portable_xlsr_conf
from espnet_s3net.tasks.language_task import LanguageTaskMixin
from espnet_s3net.train.language_data import LANG, LanguagePreprocessor
from espnet_s3net.train.masked_trainer import LanguageMaskTrainer


class XLSRPretrainTask(LanguageTaskMixin, AbsTask):
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
            "mask_file, mask_missing, language_modules (per-language adapters "
            "or gates: {type: adapter|gating, languages: [...], ...})",
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
        return LanguagePreprocessor(None)

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return (LANG,)

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
        if model_conf.get("init_checkpoint") is not None:
            # config.yaml records the architecture read from the public checkpoint; the
            # trained weights are in this experiment's checkpoints
            model_conf.pop("init_checkpoint")
            args.model_conf = {**model_conf, "xlsr_conf": portable_xlsr_conf(model.xlsr)}
            args.init = None
        return model
