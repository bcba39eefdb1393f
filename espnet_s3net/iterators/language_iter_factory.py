"""ESPnet iterator factory for single-language batches.

Importing this module registers the batch type ``lang_numel`` in ESPnet's
``BATCH_TYPES``, so that ``--batch_type lang_numel`` passes argparse; the task
mixin :class:`espnet_s3net.tasks.language_task.LanguageTaskMixin` builds this
factory for it. Training batches come from :class:`LanguageBatchSampler`,
validation batches from :class:`LanguageCoverageSampler`. Under DDP every rank
builds the same batch list from the same (seed, epoch) and takes
``batch[rank::world_size]``, so all ranks see the same language in the same step.
"""

import logging
import random
from functools import partial
from typing import Callable, List, Optional, Union

import numpy as np
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
    "(read from the data input named lang: <data dir>/utt2lang,lang,text); the language of "
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
