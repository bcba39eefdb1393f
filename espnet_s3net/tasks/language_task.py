"""Task mixin: the language of every utterance as ESPnet data, single-language batches,
and models whose sub-network follows the data's language.

A task lists :class:`LanguageTaskMixin` before its ESPnet base class::

    class XLSRPretrainTask(LanguageTaskMixin, AbsTask): ...

It adds to the task:

- the optional data input ``lang`` (``--*_data_path_and_name_and_type <dir>/utt2lang,lang,text``),
  turned into an array by :class:`LanguagePreprocessor` so it travels with the batch;
- ``--batch_type lang_numel`` (:class:`LanguageBatchSampler`: one language per batch,
  ``p_l ∝ (n_l/N)^lang_alpha``), reading the languages from that same ``lang`` input;
- for ESPnet's streaming iterators (``espnet2.bin.asr_inference``, stats collection),
  which call the model without extra data: the ``lang`` of each batch is taken out of it
  and activates that language's sub-network on the models this task built (training does
  the same in :class:`LanguageMaskTrainer`); a batch of several languages (stats
  collection reads ``--batch_size`` utterances in file order) is split into one batch per
  language. A model with sub-networks decoded without a language stops with an error.
"""

import argparse
import logging
import weakref
from pathlib import Path
from typing import Dict

import torch
from espnet2.fileio.read_text import load_num_sequence_text, read_2columns_text
from espnet2.iterators.abs_iter_factory import AbsIterFactory

from espnet_s3net.iterators.language_iter_factory import LANG_NUMEL, LanguageIterFactory
from espnet_s3net.samplers.language_batch_sampler import LanguageBatchSampler, LanguageCoverageSampler
from espnet_s3net.train.language_data import (
    LANG,
    LanguagePreprocessor,
    language_followers,
    language_input,
    pop_languages,
)

#: models built by a language task in this process (for streaming iterators)
_BUILT_MODELS: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()


def read_language_inputs(utt2lang_file: str, shape_file: str):
    """(utt -> language, utt -> length) from the ``lang`` input and the first shape file
    (its first number per line). An utterance without a language is an error naming it."""
    for path in (utt2lang_file, shape_file):
        if not Path(path).exists():
            raise ValueError(f"{path} does not exist (needed by --batch_type {LANG_NUMEL})")
    utt2lang = read_2columns_text(utt2lang_file)
    shapes = load_num_sequence_text(shape_file, loader_type="csv_int")
    utt2len: Dict[str, int] = {utt: int(shape[0]) for utt, shape in shapes.items()}
    missing = [utt for utt in utt2len if utt not in utt2lang]
    if missing:
        raise ValueError(f"{len(missing)} utterances of {shape_file} have no language in "
                         f"{utt2lang_file}, e.g. '{missing[0]}'")
    return utt2lang, utt2len


class LanguageStream:
    """ESPnet streaming iterator whose batches activate their language on the models
    built by the task (see the module docstring); ``(keys, batch)`` without ``lang``."""

    def __init__(self, loader, inference: bool):
        self.loader, self.inference = loader, inference

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for keys, batch in self.loader:
            langs = pop_languages(batch)
            if langs is None:
                yield keys, batch
                continue
            maskers = [m for model in list(_BUILT_MODELS) for m in language_followers(model)]
            if not maskers and self.inference:
                raise ValueError(f"utterance {keys[0]} comes with a language ({langs[0]}) but the model has no "
                                 "language sub-networks (no mask_file in its frontend_conf / model_conf): "
                                 "give the mask file, or drop the lang input")
            for lang in dict.fromkeys(langs):
                rows = [i for i, row_lang in enumerate(langs) if row_lang == lang]
                for masker in maskers:
                    masker.activate(lang)
                if len(rows) == len(langs):
                    yield keys, batch
                else:
                    index = torch.tensor(rows)
                    yield [keys[i] for i in rows], {name: value[index] for name, value in batch.items()}


class LanguageTaskMixin:
    """ESPnet task mixin: ``lang`` data, ``--batch_type lang_numel``, language-following
    models (see the module docstring)."""

    @classmethod
    def get_parser(cls):
        parser = super().get_parser()
        group = parser.add_argument_group("Language batch sampler")
        group.add_argument("--lang_alpha", type=float, default=0.5,
                           help="exponent of the language distribution p_l ∝ (n_l/N)^alpha used by "
                                f"--batch_type {LANG_NUMEL} (1: proportional, 0: uniform)")
        return parser

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False):
        return tuple(super().optional_data_names(train, inference)) + (LANG,)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool):
        return LanguagePreprocessor(super().build_preprocess_fn(args, train))

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        model = super().build_model(args)
        _BUILT_MODELS.add(model)
        return model

    @classmethod
    def build_streaming_iterator(cls, *args, **kwargs):
        loader = super().build_streaming_iterator(*args, **kwargs)
        return LanguageStream(loader, inference=kwargs.get("inference", False))

    @classmethod
    def build_sequence_iter_factory(cls, args: argparse.Namespace, iter_options, mode: str) -> AbsIterFactory:
        if iter_options.batch_type != LANG_NUMEL:
            return super().build_sequence_iter_factory(args, iter_options, mode)
        utt2lang_file = language_input(iter_options.data_path_and_name_and_type)
        if utt2lang_file is None:
            raise ValueError(f"[{mode}] --batch_type {LANG_NUMEL} needs the language of every utterance: add "
                             f"--{mode}_data_path_and_name_and_type <data dir>/utt2lang,{LANG},text")
        if len(iter_options.shape_files) == 0:
            raise ValueError(f"[{mode}] --batch_type {LANG_NUMEL} needs a shape file")
        utt2lang, utt2len = read_language_inputs(utt2lang_file, iter_options.shape_files[0])
        if iter_options.distributed:
            world_size, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        else:
            world_size, rank = 1, 0
        min_batch_size = max(args.min_batch_size, world_size)
        if iter_options.train:
            sampler = LanguageBatchSampler(
                utt2lang=utt2lang, utt2len=utt2len, batch_bins=iter_options.batch_bins, alpha=args.lang_alpha,
                seed=args.seed, accum_grad=args.accum_grad, num_batches=iter_options.num_iters_per_epoch,
                min_batch_size=min_batch_size)
        else:
            sampler = LanguageCoverageSampler(utt2lang=utt2lang, utt2len=utt2len,
                                              batch_bins=iter_options.batch_bins, min_batch_size=min_batch_size)
        logging.info(f"[{mode}] Batch sampler: {sampler}")
        dataset = cls.build_dataset(args, iter_options, set(utt2len))
        logging.info(f"[{mode}] dataset:\n{dataset}")
        return LanguageIterFactory(dataset=dataset, sampler=sampler, rank=rank, world_size=world_size,
                                   seed=args.seed, num_workers=args.num_workers, collate_fn=iter_options.collate_fn,
                                   pin_memory=args.ngpu > 0, name=mode)
