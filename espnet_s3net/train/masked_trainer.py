"""ESPnet trainer for language-adaptive (S3Net) training.

It extends ESPnet's :class:`Trainer` without changing its loop: the train, valid
and attention-plot iterators are wrapped so that, before each batch reaches the
model, the batch's language (the data input ``lang``, see
:mod:`espnet_s3net.train.language_data`) is taken out of the batch, a batch mixing
languages is refused, and every :class:`LanguageMasker` in the model activates that
language's sub-network. A model without ``s3net`` frontend, masks or language data
is trained by ESPnet's own Trainer unchanged. Besides:

- schedules advance once per optimizer update: after every step that happened
  (skipped steps do not count) ``count_update()`` is called on each module that
  has it (Gumbel temperature, frozen-transformer steps);
- under DDP, ``find_unused_parameters`` is switched on when a module of the model
  says that a training step may leave parameters without gradient
  (``unused_parameters_reason()``: LayerDrop, a transformer frozen for the first
  updates, ...), whatever the config says;
- non-finite losses are counted (ESPnet skips those steps) on all ranks alike
  (a NaN on one rank counts on every rank) and training stops on every rank with
  the same error after ``--max_nonfinite_steps`` of them;
- averaged checkpoints (``*.ave_Nbest.pth``) take integer buffers (update
  counters, pathway mask bits) from the newest averaged epoch instead of ESPnet's
  sum or mean;
- S3Net training starts only from the weights the masks were extracted from, and
  an experiment is not resumed with other masks;
- a pathway schedule in the model (ASR pathways, ``frontend_conf.pathways``) is checked
  against the run before training (:func:`start_pathways`), and rank 0 writes its masks
  to ``<output_dir>/pathways/``: ``masks_round<r>.pt`` after round ``r``, ``masks.pt``
  at the end; each rank saves the schedule's score accumulators (not in the state dict)
  after every epoch as ``scores.rank<r>.pth`` there, which ``--resume`` reads;
- ``--resume`` rewrites the newest epoch's model file when a kill left it missing or
  truncated (:func:`repair_epoch_file`).
"""

import argparse
import dataclasses
import logging
import math
import os
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from espnet2.fileio.read_text import read_2columns_text
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer, TrainerOptions
from espnet2.utils.types import str2bool

from espnet_s3net.masks.language_masker import OPTIM_STATE_POLICIES, LanguageMasker, find_maskers
from espnet_s3net.masks.pathways import PathwaySchedule, check_schedule
from espnet_s3net.train.language_data import LANG, language_followers, language_input, pop_batch_language
from espnet_s3net.train.schedules import update_counter_hook


@dataclasses.dataclass
class LanguageMaskTrainerOptions(TrainerOptions):
    max_nonfinite_steps: int
    mask_source_check: bool
    optim_state_policy: str
    train_data_path_and_name_and_type: Sequence
    num_iters_per_epoch: Optional[int]


def trains_languages(model: torch.nn.Module, options) -> bool:
    """Whether ``model`` needs this trainer: it has language masks or a module with an
    update schedule or unused-parameter reason (XLSR), or the data has a language."""
    has_language = any(name == LANG for _, name, _ in options.train_data_path_and_name_and_type)
    return has_language or bool(language_followers(model)) or any(
        hasattr(m, "count_update") or hasattr(m, "unused_parameters_reason") for m in model.modules())


class NonFiniteLossError(RuntimeError):
    """Too many training steps had a NaN or infinite loss."""


def unused_parameters_reasons(model: torch.nn.Module) -> List[str]:
    """Why a training step of ``model`` may leave parameters without gradient, from every
    module that defines ``unused_parameters_reason() -> Optional[str]``."""
    reasons = []
    for name, module in model.named_modules():
        ask = getattr(module, "unused_parameters_reason", None)
        reason = ask() if callable(ask) else None
        if reason:
            reasons.append(f"{name or type(module).__name__}: {reason}")
    return reasons


def keep_newest_integer_buffers(output_dir: Path, criteria: Sequence, nbest) -> None:
    """In each ``<phase>.<key>.ave_<n>best.pth`` that ESPnet averaged, replace integer
    tensors (which ESPnet sums, e.g. update counters, or averages into floats, e.g. uint8
    pathway mask bits) by those of the newest averaged epoch. The epochs are chosen as
    ESPnet chooses them, from the reporter saved in ``checkpoint.pth``."""
    checkpoint = output_dir / "checkpoint.pth"
    if not checkpoint.exists():
        return
    reporter = Reporter()
    reporter.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["reporter"])
    nbests = [nbest] if isinstance(nbest, int) else list(nbest)
    for phase, key, mode in criteria:
        if not reporter.has(phase, key):
            continue
        epochs = [e for e, _ in reporter.sort_epochs_and_values(phase, key, mode)]
        for n in nbests:
            path = output_dir / f"{phase}.{key}.ave_{n}best.pth"
            if n < 2 or n > len(epochs) or not path.exists() or path.is_symlink():
                continue
            newest = torch.load(output_dir / f"{max(epochs[:n])}epoch.pth", map_location="cpu")
            averaged = torch.load(path, map_location="cpu")
            # by the saved dtype: ESPnet sums int* tensors but turns uint8 (mask bits) into float means
            integer = [k for k, v in newest.items() if not v.is_floating_point() and not v.is_complex()]
            if integer:
                averaged.update({k: newest[k] for k in integer})
                torch.save(averaged, path)
                logging.info(f"{path}: {', '.join(integer)} taken from epoch {max(epochs[:n])} (not summed)")


def total_updates(options, train_iter_factory) -> int:
    """Optimizer updates of the whole run: ``max_epoch × (B // accum_grad)``, as ESPnet
    steps after every ``accum_grad``-th batch of an epoch; B, the batches per epoch, is
    ``num_iters_per_epoch`` or, when None, the length of epoch 1's iterator (the same in
    every epoch). Steps skipped for a non-finite loss are not subtracted."""
    batches = options.num_iters_per_epoch
    if batches is None:
        try:
            batches = len(train_iter_factory.build_iter(1))
        except TypeError:
            raise ValueError(f"the train iterator ({type(train_iter_factory).__name__}) has no length: "
                             "set --num_iters_per_epoch to fix the number of updates") from None
    return options.max_epoch * (batches // options.accum_grad)


def start_pathways(model: torch.nn.Module, schedule: PathwaySchedule, train_iter_factory, options,
                   distributed_option) -> None:
    """Before training with ``schedule``: check it fits the run's updates
    (:func:`total_updates`) and the training data's languages, take the rewind point
    (with ``rewind``; a resume then loads the run's), let rank 0 write each
    round's masks to ``<output_dir>/pathways/``, and keep its buffers out of DDP's buffer
    broadcast (each rank accumulates its own; the schedule all-reduces what differs)."""
    check_schedule(schedule.config, total_updates(options, train_iter_factory))
    utt2lang = language_input(options.train_data_path_and_name_and_type)
    if utt2lang is None:
        raise ValueError(f"pathways are learned per language: add --train_data_path_and_name_and_type "
                         f"<data dir>/utt2lang,{LANG},text")
    schedule.check_languages(sorted(set(read_2columns_text(utt2lang).values())))
    schedule.record_rewind_point()  # the weights training starts from (after --init_param)
    if not distributed_option.distributed or distributed_option.dist_rank == 0:
        schedule.save_dir = str(Path(options.output_dir) / "pathways")
        Path(schedule.save_dir).mkdir(parents=True, exist_ok=True)
    if distributed_option.distributed:
        prefix = next(name for name, module in model.named_modules() if module is schedule)
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, [f"{prefix}.{name}" for name, _ in schedule.named_buffers()])


def _scores_file(output_dir: Path) -> Path:
    rank = torch.distributed.get_rank() if _distributed() else 0
    return Path(output_dir) / "pathways" / f"scores.rank{rank}.pth"


def save_pathway_scores(model: torch.nn.Module, output_dir: Path) -> None:
    """Write the pathway schedule's score accumulators (left out of the state dict) to
    ``<output_dir>/pathways/scores.rank<r>.pth``, one file per rank (regrow sinks differ
    between ranks until a mask change sums them); nothing without a schedule or scores."""
    for schedule in (m for m in model.modules() if isinstance(m, PathwaySchedule)):
        state = schedule.accumulator_state()
        if state:
            path = _scores_file(output_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.cpu() for k, v in state.items()}, f"{path}.tmp")
            os.replace(f"{path}.tmp", path)


def repair_epoch_file(checkpoint: Path, epoch: int, model: torch.nn.Module) -> None:
    """ESPnet writes ``checkpoint.pth`` and then ``<epoch>epoch.pth`` in place: a run killed
    in between leaves the epoch file missing or truncated, and the final checkpoint averaging
    fails on it. On resume (rank 0), rewrite it from the resumed model, which is the
    checkpoint's, atomically, and point ``latest.pth`` at it; a readable file is left alone."""
    if epoch < 1 or (_distributed() and torch.distributed.get_rank() != 0):
        return
    path = Path(checkpoint).parent / f"{epoch}epoch.pth"
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return
    except FileNotFoundError:
        reason = "missing"
    except Exception as e:  # a truncated zip archive, ...
        reason = f"unreadable ({type(e).__name__})"
    logging.warning(f"{path} is {reason} (the run was killed while it was written): "
                    f"rewritten from {checkpoint}")
    tmp = path.with_name(f"{path.name}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    latest = path.with_name("latest.pth")
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(path.name)


def load_pathway_scores(model: torch.nn.Module, output_dir: Path) -> None:
    """Restore what :func:`save_pathway_scores` wrote for this rank (a resumed run)."""
    for schedule in (m for m in model.modules() if isinstance(m, PathwaySchedule)):
        if not schedule.accumulator_state():
            continue
        path = _scores_file(output_dir)
        if path.exists():
            schedule.load_accumulator_state(torch.load(path, map_location="cpu"), str(path))
        elif int(schedule.updates):
            logging.warning(f"pathways: {path} does not exist: the scores of the current round restart from zero")


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _agree_across_ranks(lang: str, bad: bool, device: torch.device) -> bool:
    """All-reduce (max) of [non-finite, language code, -language code]: raises when the
    ranks' languages differ; returns whether any rank had a non-finite loss."""
    code = zlib.crc32(str(lang).encode())
    flags = torch.tensor([int(bad), code, -code], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    if int(flags[1]) != -int(flags[2]):
        raise RuntimeError(f"rank {torch.distributed.get_rank()} trains language {lang} while another rank "
                           "trains another one in the same step: every rank must draw the same language "
                           "(--batch_type lang_numel with the same --seed on all ranks)")
    return bool(flags[0])


def check_parameters_agree(model: torch.nn.Module) -> None:
    """Raise when ``model``'s parameters or pathway masks differ between DDP ranks (compared
    by the sum and sum of squares of every parameter, in float64, and the CRC-32 of every
    pathway schedule's mask bits, all-reduced as max and min)."""
    stats = [s for p in model.parameters() for s in (p.detach().double().sum(), p.detach().double().pow(2).sum())]
    bits = [m.bits for m in model.modules() if isinstance(m, PathwaySchedule)]
    stats = torch.stack(stats + [torch.tensor(float(zlib.crc32(b.cpu().numpy().tobytes())), dtype=torch.float64,
                                              device=stats[0].device) for b in bits])
    both = torch.cat([stats, -stats])
    torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
    largest, smallest = both[:len(stats)], -both[len(stats):]
    if not torch.equal(largest, smallest):
        raise RuntimeError(f"the model's parameters{' or pathway masks' if bits else ''} differ between DDP "
                           "ranks after this epoch")
    logging.info(f"parameters{' and pathway masks' if bits else ''} identical on all "
                 f"{torch.distributed.get_world_size()} ranks")


class LanguageBatches:
    """Iterator wrapper: takes each batch's language out of the batch and activates it
    on every masker.

    Args:
        iterator: ESPnet's ``(utt_ids, batch)`` iterator; batches carry ``lang``.
        followers: language maskers and language modules to switch (may be empty).
        tally: per-language counters (``steps``) filled while iterating.
    """

    def __init__(self, iterator, followers: List, tally: Dict):
        self.iterator = iterator
        self.followers = followers
        self.tally = tally
        self.current: Optional[str] = None

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self):
        for utt_ids, batch in self.iterator:
            lang = pop_batch_language(batch, utt_ids)
            if lang is None and self.followers:
                raise ValueError(
                    f"the model has language-specific parts (masks, adapters, gates) but the batch of "
                    f"{utt_ids[0]}, ... has no language: add --train_data_path_and_name_and_type "
                    f"<dir>/utt2lang,{LANG},text and --valid_data_path_and_name_and_type <dir>/utt2lang,{LANG},text")
            self.current = lang
            for follower in self.followers:
                follower.activate(lang)
            self.tally[lang or "(no language)"]["steps"] += 1
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
        group.add_argument("--optim_state_policy", choices=OPTIM_STATE_POLICIES, default="shared",
                           help="optimizer state of weights outside the active language's mask: "
                                "'shared' lets it decay like for a zero gradient (Adam moments), "
                                "'frozen' keeps it unchanged until a language that uses the weight "
                                "trains again")

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> TrainerOptions:
        from espnet2.utils.build_dataclass import build_dataclass

        return build_dataclass(LanguageMaskTrainerOptions, args)

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:
        if not trains_languages(model, trainer_options):
            logging.info("no s3net frontend, masks or language data: ESPnet's Trainer")
            return Trainer.run.__func__(Trainer, model, optimizers, schedulers, train_iter_factory,
                                        valid_iter_factory, plot_attention_iter_factory, trainer_options,
                                        distributed_option)
        cls._nonfinite = {"count": 0}
        maskers = find_maskers(model)
        if maskers:
            cls._check_masks(maskers, trainer_options, write_record=not distributed_option.distributed
                             or distributed_option.dist_rank == 0)
        schedules = [m for m in model.modules() if isinstance(m, PathwaySchedule)]
        if len(schedules) > 1:
            raise ValueError(f"the model has {len(schedules)} pathway schedules: one model, one schedule")
        for schedule in schedules:
            start_pathways(model, schedule, train_iter_factory, trainer_options, distributed_option)
        if distributed_option.distributed and not trainer_options.unused_parameters:
            reasons = unused_parameters_reasons(model)
            if reasons:
                logging.info("DDP: find_unused_parameters on, as a training step may leave parameters "
                             f"without gradient: {'; '.join(reasons)}")
                trainer_options.unused_parameters = True
        super().run(model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
                    plot_attention_iter_factory, trainer_options, distributed_option)
        if not distributed_option.distributed or distributed_option.dist_rank == 0:
            keep_newest_integer_buffers(Path(trainer_options.output_dir), trainer_options.best_model_criterion,
                                        trainer_options.keep_nbest_models)
            for schedule in schedules:
                schedule.save_masks(str(Path(schedule.save_dir) / "masks.pt"))

    @staticmethod
    def resume(checkpoint, model, reporter, optimizers, schedulers, scaler, ngpu: int = 0, strict: bool = True):
        Trainer.resume(checkpoint, model, reporter, optimizers, schedulers, scaler, ngpu, strict)
        load_pathway_scores(model, Path(checkpoint).parent)
        repair_epoch_file(Path(checkpoint), reporter.get_epoch(), model)

    @staticmethod
    def _check_masks(maskers: List[LanguageMasker], options, write_record: bool = True) -> None:
        """Refuse masks that do not fit the weights or the experiment's record
        (``<output_dir>/masks.fingerprint``); the record is written by one rank
        (``write_record``), atomically, so the other ranks never read it half-written."""
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
        if write_record and not record.exists():
            record.parent.mkdir(parents=True, exist_ok=True)
            tmp = record.with_name(f"{record.name}.tmp.{os.getpid()}")
            tmp.write_text(fingerprints + "\n")
            os.replace(tmp, record)

    @classmethod
    def _wrap(cls, model, iterator, tally: Dict) -> LanguageBatches:
        return LanguageBatches(iterator, language_followers(model), tally)

    @staticmethod
    def _log_tally(mode: str, tally: Dict) -> None:
        total = sum(t["steps"] for t in tally.values()) or 1
        for lang in sorted(tally):
            steps = tally[lang]["steps"]
            logging.info(f"[{mode}] language {lang}: {int(steps)} batches ({steps / total:.3f})")

    @staticmethod
    def _loss_hook(model, batches: LanguageBatches, limit: Optional[int], counter: Dict):
        """Report each batch's loss also as ``loss_<lang>`` (ESPnet's reporter then logs,
        plots and summarises it per language); count non-finite losses and, when
        ``limit`` is given (training), stop after more than ``limit`` of them.

        Under DDP, in training, one all-reduce per step makes every rank agree: a
        step counts as non-finite on all ranks when it is on one (so all ranks stop
        together, with the same error), and a step whose batch language differs
        between ranks is refused before its gradients are all-reduced."""

        def hook(module, inputs, output):
            loss, stats = (output[0], output[1]) if isinstance(output, (tuple, list)) else (output["loss"],
                                                                                          output["stats"])
            lang = batches.current
            if lang is not None:
                stats[f"loss_{lang}"] = loss.detach()  # on every rank alike: DDP averages the same keys
            value = float(loss.detach().float().mean())
            bad = not math.isfinite(value)
            if limit is not None and _distributed():
                bad = _agree_across_ranks(lang, bad, loss.device)
            if bad:
                counter["count"] += 1
                logging.warning(f"non-finite loss on a {lang} batch: the step is skipped "
                                f"({counter['count']} so far)")
                if limit is not None and counter["count"] > limit:
                    raise NonFiniteLossError(
                        f"{counter['count']} steps had a non-finite loss (limit "
                        f"--max_nonfinite_steps {limit}): stopping. Lower the learning rate, "
                        "check the data of the logged batches, or disable AMP.")

        return model.register_forward_hook(hook)

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter,
                        summary_writer, options, distributed_option) -> bool:
        tally = defaultdict(lambda: defaultdict(float))
        batches = cls._wrap(model, iterator, tally)
        for masker in find_maskers(model):
            masker.optim_state_policy = options.optim_state_policy
            for optimizer in optimizers:
                masker.attach_optimizer(optimizer)
        if not hasattr(cls, "_nonfinite"):  # train_one_epoch called outside run()
            cls._nonfinite = {"count": 0}
        handles = [cls._loss_hook(model, batches, options.max_nonfinite_steps, cls._nonfinite),
                   optimizers[0].register_step_post_hook(update_counter_hook(model))]
        try:
            invalid = super().train_one_epoch(model, batches, optimizers, schedulers, scaler, reporter,
                                              summary_writer, options, distributed_option)
            if distributed_option.distributed:
                check_parameters_agree(model)
            save_pathway_scores(model, options.output_dir)  # just before ESPnet saves checkpoint.pth
            return invalid
        finally:
            for handle in handles:
                handle.remove()
            for follower in batches.followers:
                follower.deactivate()
            cls._log_tally("train", tally)

    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options, distributed_option) -> None:
        tally = defaultdict(lambda: defaultdict(float))
        batches = cls._wrap(model, iterator, tally)
        handle = cls._loss_hook(model, batches, None, {"count": 0})
        try:
            super().validate_one_epoch(model, batches, reporter, options, distributed_option)
        finally:
            handle.remove()
            for follower in batches.followers:
                follower.deactivate()
            cls._log_tally("valid", tally)

    @classmethod
    def plot_attention(cls, model, output_dir, summary_writer, iterator, reporter, options) -> None:
        batches = cls._wrap(model, iterator, defaultdict(lambda: defaultdict(float)))
        try:
            super().plot_attention(model, output_dir, summary_writer, batches, reporter, options)
        finally:
            for follower in batches.followers:
                follower.deactivate()
