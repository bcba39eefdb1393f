"""ESPnet trainer for language-adaptive (S3Net) training.

It extends ESPnet's :class:`Trainer` without changing its loop: the train and
valid iterators are wrapped so that, before each batch reaches the model, the
batch's language is looked up (``utt2category`` next to the first data file),
a batch mixing languages is refused, and every :class:`LanguageMasker` in the
model activates that language's sub-network. With no masker it trains like
ESPnet's Trainer. It also logs per-language step counts and mean loss each
epoch, counts non-finite losses (ESPnet skips those steps) and stops after
``--max_nonfinite_steps`` of them, checks that S3Net training starts from the
weights the masks were extracted from, and refuses to resume with other masks.
"""

import argparse
import dataclasses
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2.fileio.read_text import read_2columns_text
from espnet2.train.trainer import Trainer, TrainerOptions
from espnet2.utils.types import str2bool

from espnet_s3net.train.language_masker import LanguageMasker, find_maskers


@dataclasses.dataclass
class LanguageMaskTrainerOptions(TrainerOptions):
    max_nonfinite_steps: int
    mask_source_check: bool
    utt2lang_name: str
    train_data_path_and_name_and_type: Sequence
    valid_data_path_and_name_and_type: Sequence


def read_utt2lang(data_path_and_name_and_type: Sequence, utt2lang_name: str) -> Dict[str, str]:
    """utt -> language from ``<dir of the first data file>/<utt2lang_name>``."""
    path = Path(data_path_and_name_and_type[0][0]).parent / utt2lang_name
    if not path.exists():
        raise ValueError(f"{path} does not exist: the trainer needs each utterance's language")
    return dict(read_2columns_text(path))


class LanguageBatches:
    """Iterator wrapper: activates each batch's language on every masker.

    Args:
        iterator: ESPnet's ``(utt_ids, batch)`` iterator.
        utt2lang: utterance -> language.
        maskers: maskers to switch (may be empty).
        tally: per-language counters (``steps``) filled while iterating.
    """

    def __init__(self, iterator, utt2lang: Dict[str, str], maskers: List[LanguageMasker], tally: Dict):
        self.iterator = iterator
        self.utt2lang = utt2lang
        self.maskers = maskers
        self.tally = tally
        self.current: Optional[str] = None

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self):
        for utt_ids, batch in self.iterator:
            langs = set()
            for utt in utt_ids:
                if utt not in self.utt2lang:
                    raise ValueError(f"utterance {utt} has no language in the utt2lang file")
                langs.add(self.utt2lang[utt])
            if len(langs) != 1:
                raise ValueError(f"a batch mixes languages {', '.join(sorted(langs))} "
                                 f"(e.g. utterances {list(utt_ids)[:4]}); use batch_type lang_numel")
            self.current = langs.pop()
            for masker in self.maskers:
                masker.activate(self.current)
            self.tally[self.current]["steps"] += 1
            yield utt_ids, batch


class LanguageMaskTrainer(Trainer):
    """ESPnet Trainer with per-batch language sub-networks (see the module docstring)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group("Language-adaptive training")
        group.add_argument("--max_nonfinite_steps", type=int, default=10,
                           help="stop after this many steps with a NaN/inf loss (they are skipped)")
        group.add_argument("--mask_source_check", type=str2bool, default=True,
                           help="refuse to start when the prunable weights are not those the masks "
                                "were extracted from (false for fine-tuning a trained S3Net model)")

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> TrainerOptions:
        from espnet2.utils.build_dataclass import build_dataclass

        return build_dataclass(LanguageMaskTrainerOptions, args)

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:
        cls._nonfinite = {"count": 0}
        maskers = find_maskers(model)
        if maskers:
            cls._check_masks(maskers, trainer_options)
        super().run(model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
                    plot_attention_iter_factory, trainer_options, distributed_option)

    @staticmethod
    def _check_masks(maskers: List[LanguageMasker], options) -> None:
        fingerprints = ",".join(m.masks.fingerprint for m in maskers)
        if options.mask_source_check:
            for masker in maskers:
                if not masker.source_fingerprint_matches(masker.module):
                    raise ValueError(
                        "the model's prunable weights are not those the masks were extracted from "
                        "(source fingerprint mismatch): pass the checkpoint used for extraction "
                        "with --init_param, or --mask_source_check false to use the masks anyway")
        record = Path(options.output_dir) / "masks.fingerprint"
        if record.exists() and record.read_text().strip() != fingerprints:
            raise ValueError(f"{record} records other masks than the ones given: refusing to resume "
                             "this experiment with different masks")
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(fingerprints + "\n")

    @classmethod
    def _wrap(cls, model, iterator, options, data_key: str, tally: Dict) -> LanguageBatches:
        utt2lang = read_utt2lang(getattr(options, data_key), options.utt2lang_name)
        return LanguageBatches(iterator, utt2lang, find_maskers(model), tally)

    @staticmethod
    def _log_tally(mode: str, tally: Dict) -> None:
        total = sum(t["steps"] for t in tally.values()) or 1
        for lang in sorted(tally):
            t = tally[lang]
            mean = t["loss"] / t["n"] if t["n"] else float("nan")
            logging.info(f"[{mode}] language {lang}: {int(t['steps'])} batches ({t['steps'] / total:.3f}), "
                         f"mean loss {mean:.4f}")

    @staticmethod
    def _loss_hook(model, batches: LanguageBatches, tally: Dict, limit: Optional[int], counter: Dict):
        """Record each batch's loss per language; count non-finite ones and, when
        ``limit`` is given (training), stop after more than ``limit`` of them."""

        def hook(module, inputs, output):
            value = float(output[0].detach().float().mean())
            lang = batches.current
            if not math.isfinite(value):
                counter["count"] += 1
                logging.warning(f"non-finite loss {value} on a {lang} batch: the step is skipped "
                                f"({counter['count']} so far)")
                if limit is not None and counter["count"] > limit:
                    raise RuntimeError(
                        f"{counter['count']} steps had a non-finite loss (limit "
                        f"--max_nonfinite_steps {limit}): stopping. Lower the learning rate, "
                        "check the data of the logged batches, or disable AMP.")
                return
            tally[lang]["loss"] += value
            tally[lang]["n"] += 1

        return model.register_forward_hook(hook)

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter,
                        summary_writer, options, distributed_option) -> bool:
        tally = defaultdict(lambda: defaultdict(float))
        batches = cls._wrap(model, iterator, options, "train_data_path_and_name_and_type", tally)
        for masker in batches.maskers:
            for optimizer in optimizers:
                masker.attach_optimizer(optimizer)
        if not hasattr(cls, "_nonfinite"):  # train_one_epoch called outside run()
            cls._nonfinite = {"count": 0}
        handle = cls._loss_hook(model, batches, tally, options.max_nonfinite_steps, cls._nonfinite)
        try:
            return super().train_one_epoch(model, batches, optimizers, schedulers, scaler, reporter,
                                           summary_writer, options, distributed_option)
        finally:
            handle.remove()
            for masker in batches.maskers:
                masker.deactivate()
            cls._log_tally("train", tally)

    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options, distributed_option) -> None:
        tally = defaultdict(lambda: defaultdict(float))
        batches = cls._wrap(model, iterator, options, "valid_data_path_and_name_and_type", tally)
        handle = cls._loss_hook(model, batches, tally, None, {"count": 0})
        try:
            super().validate_one_epoch(model, batches, reporter, options, distributed_option)
        finally:
            handle.remove()
            for masker in batches.maskers:
                masker.deactivate()
            cls._log_tally("valid", tally)
