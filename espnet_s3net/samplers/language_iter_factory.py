"""ESPnet iterator factory and task mixin for single-language batches.

Importing this module registers the batch type ``lang_numel`` in ESPnet's
``BATCH_TYPES``, so that ``--batch_type lang_numel`` (and
``--valid_batch_type lang_numel``) pass argparse. A task selects the sampler by
listing :class:`LanguageSamplerTaskMixin` before its ESPnet base class::

    class MyTask(LanguageSamplerTaskMixin, AbsTask): ...

Training batches then come from :class:`LanguageBatchSampler`, validation
batches from :class:`LanguageCoverageSampler`. Under DDP every rank builds the
same batch list from the same (seed, epoch) and takes ``batch[rank::world_size]``,
so all ranks see the same language in the same step.
"""

import argparse
import logging
import random
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from espnet2.fileio.read_text import load_num_sequence_text, read_2columns_text
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.samplers.build_batch_sampler import BATCH_TYPES
from torch.utils.data import DataLoader

from espnet_s3net.samplers.language_batch_sampler import (
    LanguageBatchSampler,
    LanguageCoverageSampler,
)

LANG_NUMEL = "lang_numel"

BATCH_TYPES.setdefault(
    LANG_NUMEL,
    "LanguageBatchSampler: every mini-batch holds utterances of ONE language "
    "(read from '<data dir>/utt2category', see --utt2lang_name); the language of "
    "each group of accum_grad batches is drawn from p_l ∝ (n_l/N)^lang_alpha, "
    "n_l = total length of language l. Batches are filled up to batch_bins "
    "padded elements (max length x batch size) from the first shape file:\n\n"
    "    utterance_id_a 160000\n"
    "    utterance_id_b 48000\n\n"
    "Validation batches cover every utterance once, grouped by language.\n",
)


def _seed_worker(worker_id: int, base_seed: int) -> None:
    random.seed(base_seed + worker_id)
    np.random.seed(base_seed + worker_id)


class LanguageIterFactory(AbsIterFactory):
    """Build each epoch's DataLoader from a language sampler.

    Args:
        dataset: ESPnet dataset indexed by utterance id.
        sampler: :class:`LanguageBatchSampler` or :class:`LanguageCoverageSampler`.
        rank: this process's DDP rank (0 without DDP).
        world_size: number of DDP processes (1 without DDP).
        seed: base seed of the DataLoader workers.
        num_workers: DataLoader worker processes.
        collate_fn: ESPnet collate function.
        pin_memory: pin host memory (GPU training).
        name: prefix of the log lines ("train", "valid").
    """

    def __init__(
        self,
        dataset,
        sampler: Union[LanguageBatchSampler, LanguageCoverageSampler],
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        collate_fn: Optional[Callable] = None,
        pin_memory: bool = False,
        name: str = "train",
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.dataset = dataset
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.name = name

    def epoch_batches(self, epoch: int) -> List[List[str]]:
        """This rank's share of every batch of ``epoch``."""
        self.sampler.set_epoch(epoch)
        batches = self.sampler.epoch_batches(epoch)
        for index, batch in enumerate(batches):
            if len(batch) < self.world_size:
                raise RuntimeError(
                    f"[{self.name}] batch {index} of epoch {epoch} has {len(batch)} "
                    f"utterances, fewer than the world size {self.world_size}: "
                    f"{batch}"
                )
        self._log_histogram(epoch)
        return [batch[self.rank :: self.world_size] for batch in batches]

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> DataLoader:
        """DataLoader over this rank's batches of ``epoch``.

        ``shuffle`` is accepted for the ESPnet interface; the order is already
        random (training) or fixed (validation) by the sampler.
        """
        kwargs = {} if self.collate_fn is None else {"collate_fn": self.collate_fn}
        return DataLoader(
            dataset=self.dataset,
            batch_sampler=self.epoch_batches(epoch),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=partial(_seed_worker, base_seed=self.seed + epoch),
            **kwargs,
        )

    def _log_histogram(self, epoch: int) -> None:
        histogram = self.sampler.realised_histogram()
        if isinstance(self.sampler, LanguageCoverageSampler):
            for lang, count in histogram.items():
                logging.info(
                    f"[{self.name}] epoch {epoch} language {lang}: {count} batches "
                    "covering all its utterances"
                )
            return
        total = max(1, sum(histogram.values()))
        for lang, target in self.sampler.target_probs.items():
            count = histogram.get(lang, 0)
            logging.info(
                f"[{self.name}] epoch {epoch} language {lang}: {count} batches, "
                f"realised {count / total:.4f}, target p_l {target:.4f}"
            )


def read_language_inputs(
    utt2lang_file: Union[str, Path], shape_file: Union[str, Path]
) -> Tuple[Dict[str, str], Dict[str, int]]:
    """Read ``utt2lang`` (``<utt> <lang>``) and lengths (``<utt> <int>[,...]``).

    Returns:
        (utt2lang, utt2len): dicts; the length is the first number of each
        shape-file line. Raises ValueError naming the file when missing.
    """
    for path in (utt2lang_file, shape_file):
        if not Path(path).exists():
            raise ValueError(
                f"{path} does not exist (needed by --batch_type lang_numel)"
            )
    utt2lang = read_2columns_text(utt2lang_file)
    shapes = load_num_sequence_text(shape_file, loader_type="csv_int")
    utt2len: Dict[str, int] = {utt: int(shape[0]) for utt, shape in shapes.items()}
    missing = [utt for utt in utt2len if utt not in utt2lang]
    if missing:
        raise ValueError(
            f"{len(missing)} utterances of {shape_file} have no language in "
            f"{utt2lang_file}, e.g. '{missing[0]}'"
        )
    return utt2lang, utt2len


class LanguageSamplerTaskMixin:
    """Task mixin: ``--batch_type lang_numel`` builds single-language batches.

    Adds the task options ``--lang_alpha`` and ``--utt2lang_name``; everything
    else (batch_bins, accum_grad, num_iters_per_epoch as batches per epoch,
    seed, min_batch_size) comes from ESPnet's own options.
    """

    @classmethod
    def get_parser(cls):
        parser = super().get_parser()
        group = parser.add_argument_group("Language batch sampler")
        group.add_argument(
            "--lang_alpha",
            type=float,
            default=0.5,
            help="Exponent of the language distribution p_l ∝ (n_l/N)^alpha "
            "used by --batch_type lang_numel (1: proportional, 0: uniform)",
        )
        group.add_argument(
            "--utt2lang_name",
            type=str,
            default="utt2category",
            help="File next to the first data file mapping utterance to language",
        )
        return parser

    @classmethod
    def build_sequence_iter_factory(
        cls, args: argparse.Namespace, iter_options, mode: str
    ) -> AbsIterFactory:
        if iter_options.batch_type != LANG_NUMEL:
            return super().build_sequence_iter_factory(args, iter_options, mode)

        data_dir = Path(iter_options.data_path_and_name_and_type[0][0]).parent
        if len(iter_options.shape_files) == 0:
            raise ValueError(f"[{mode}] --batch_type lang_numel needs a shape file")
        utt2lang, utt2len = read_language_inputs(
            data_dir / args.utt2lang_name, iter_options.shape_files[0]
        )
        if iter_options.distributed:
            world_size = torch.distributed.get_world_size()
            rank = torch.distributed.get_rank()
        else:
            world_size, rank = 1, 0
        min_batch_size = max(args.min_batch_size, world_size)
        if iter_options.train:
            sampler = LanguageBatchSampler(
                utt2lang=utt2lang,
                utt2len=utt2len,
                batch_bins=iter_options.batch_bins,
                alpha=args.lang_alpha,
                seed=args.seed,
                accum_grad=args.accum_grad,
                num_batches=iter_options.num_iters_per_epoch,
                min_batch_size=min_batch_size,
            )
        else:
            sampler = LanguageCoverageSampler(
                utt2lang=utt2lang,
                utt2len=utt2len,
                batch_bins=iter_options.batch_bins,
                min_batch_size=min_batch_size,
            )
        logging.info(f"[{mode}] Batch sampler: {sampler}")
        dataset = cls.build_dataset(args, iter_options, set(utt2len))
        logging.info(f"[{mode}] dataset:\n{dataset}")
        return LanguageIterFactory(
            dataset=dataset,
            sampler=sampler,
            rank=rank,
            world_size=world_size,
            seed=args.seed,
            num_workers=args.num_workers,
            collate_fn=iter_options.collate_fn,
            pin_memory=args.ngpu > 0,
            name=mode,
        )
