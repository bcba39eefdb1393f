"""ASR pathways and dynamic ASR pathways: when and how language masks change during training.

A schedule of mask updates, not a trainer: :class:`PathwaySchedule` is a module of the
model with ``count_update()`` (:mod:`espnet_s3net.train.schedules`), advanced once per
optimizer update by the mask-aware trainer, which keeps training each batch's language
through its current mask (:class:`~espnet_s3net.masks.language_masker.LanguageMasker`).

Pruning (ASR pathways, Yang et al. 2022). Updates are counted over all languages; round
``r`` (1..R) ends after update ``r·N``. There every language's pathway is pruned, within
itself (a pruned weight never comes back in pruning rounds), lowest importance first, to
:func:`kept_after_round` weights per tensor (``layerwise``) or over all prunable tensors
(``global``): the kept fraction shrinks geometrically, ``(1 - s)^(r/R)``, i.e. the same
fraction of the remaining pathway per round, and round R keeps exactly ``n - round(s·n)``,
the target as :func:`~espnet_s3net.masks.pruning.masks_from_scores` counts it.

Dynamic pathways (Xie et al. 2024), on when ``regrow_every`` K > 0: after every K-th update
that does not end a pruning round (pruning takes precedence; also after the last round),
each language drops the ``round(f·kept)`` lowest-importance weights of its pathway and
regrows as many among the weights outside it, highest regrow score first
(:func:`drop_and_regrow`): sparsity stays constant. A regrown weight starts from its
current shared value.

Criteria (per language; accumulated over that language's updates since the previous mask
change, or with ``score_window`` W only over those among the last W updates before the
change, then reset; nothing is accumulated when no change is ahead):

- importance ``magnitude`` (default): ``|W|`` of the shared weights, no state. With the
  same initial mask for every language, magnitude pruning keeps the pathways identical (the
  language-agnostic pruned model); language-specific pathways need ``taylor`` or
  per-language initial masks (the papers start from monolingually pruned masks).
- importance ``taylor``: ``Σ_t (g_t ⊙ W_t)²``, with the gradient the optimizer used and
  the weights after that step; zero outside the pathway.
- regrow ``gradient`` (default): ``Σ_t g_t²`` of the unmasked gradient (for one update, the
  ranking of ``|g|``), collected by the masker's opt-in gradient sinks (the masked backward
  zeroes it otherwise); ``taylor``: ``W² ⊙ Σ_t g_t²``, the Taylor score with the weights at
  the regrow. Under a GradScaler these sums are in loss-scaled units (rankings hold while
  the scale is constant); an update whose collected gradient is not finite (or whose
  squares sum past float32's range) adds nothing.

Defaults (:class:`PathwayConfig`): 4 rounds of 1000 updates, layerwise, magnitude, no
regrowth; with regrowth (K > 0) 10% of each pathway by the ``gradient`` criterion.

A language without updates since the previous change keeps its pathway at a regrow, and is
pruned by magnitude at a round under ``taylor`` (both logged).

Memory (n prunable weights, L languages): the masks, ``L·n/8`` bytes; ``taylor``
importance ``4·L·n`` bytes; regrow ``4·L·n`` bytes plus ``4·n`` for the current update's
sinks. The masks and the update count are buffers of the state dict; the accumulators are
buffers left out of it (every checkpoint and averaged model would grow by as much): the
trainer saves them beside ``checkpoint.pth``, one file per rank
(:func:`~espnet_s3net.train.masked_trainer.save_pathway_scores`), so a resumed run goes
on mid-schedule with the same masks. The masker's masks keep the initial masks'
``source_fingerprint`` (the weights training started from, which the trainer checks); a
saved mask file records the weights at saving.

Rewind (``rewind: true``): at the end of every pruning round, the last included, right
after the masks change (and before the round's masks are saved, so their
``source_fingerprint`` is that of the rewind point), every prunable weight, inside and
outside every pathway, is reset to its value at the rewind point. Only the prunable
weights (the masks' tensors, about 89% of an XLSR model's parameters): unlike LTH
(:mod:`espnet_s3net.masks.extraction`), which retrains a private copy from its start and
rewinds every tensor, pathway training goes on (biases, norms, convolutions, the CTC head
outside the XLSR model, counters and this schedule's state keep their progress), and the
XLSR model's other parameters are not a fixed set (the ASR frontend drops the pre-training
heads after the schedule is built). A regrow does not rewind. The rewind point is the
weights when the schedule is built, taken again by the trainer when training starts
(:meth:`PathwaySchedule.record_rewind_point`, after ``--init_param``); it is the buffer
``rewind_point``, so a resumed run rewinds to the same weights. Cost: one copy of the
prunable weights in their dtype (float32: ``4·n`` bytes, 0.34 GB for ``xlsr_base``), in
memory and in every checkpoint. Optimizer state is left as it is (the schedule holds no
optimizer): Adam's moments and step count, and the learning rate schedule, go on from the
trained weights' (weight rewinding without learning-rate rewinding); the moments fade
after about ``1/(1 - β₂)`` updates. The rewind runs in ``count_update``, after the masker
has put back the weights outside the mask (its step post-hook comes first): nothing undoes
it.

DDP: every rank sees the same all-reduced gradients and weights, so masks agree; the
gradient sinks are per rank and summed over ranks (``all_reduce``) before each regrow.
The schedule's buffers must then stay out of DDP's buffer broadcast (the trainer's
:func:`~espnet_s3net.train.masked_trainer.start_pathways` sees to it).
"""

import dataclasses
import itertools
import logging
import os
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from espnet_s3net.masks.language_masker import LanguageMasker
from espnet_s3net.masks.mask_file import SubnetMasks, pack_bits, parameter_fingerprint, unpack_bits
from espnet_s3net.masks.mask_kernels import accumulate_taylor_
from espnet_s3net.masks.pruning import SCOPES, UNSTRUCTURED, keep_highest, select_lowest

IMPORTANCES = ("magnitude", "taylor")
#: the score accumulators (float32 (L, n)) that checkpoints hold beside the state dict
ACCUMULATORS = ("importance", "grow")
REGROW_CRITERIA = ("gradient", "taylor")


@dataclasses.dataclass
class PathwayConfig:
    """Pathway schedule options (checked on construction).

    Args:
        target_sparsity: fraction of each pathway pruned after the last round, in [0, 1).
        rounds: R pruning rounds (≥ 1).
        updates_per_round: N optimizer updates per round (≥ 1).
        scope: ``layerwise`` (every tensor at the sparsity) or ``global`` (over all).
        importance: what pruning and dropping remove first: ``magnitude`` or ``taylor``.
        rewind: reset the prunable weights to the rewind point after each round (see above).
        regrow_every: K, updates between drop-and-regrow steps (0: off, plain pathways).
        regrow_fraction: fraction of the pathway dropped and regrown, in (0, 1).
        regrow_criterion: what is regrown first: ``gradient`` or ``taylor``.
        score_window: accumulate the ``taylor`` / regrow scores only over the last W updates
            before each mask change (None: every update since the previous change).
    """

    target_sparsity: float
    rounds: int = 4
    updates_per_round: int = 1000
    scope: str = "layerwise"
    importance: str = "magnitude"
    rewind: bool = False
    regrow_every: int = 0
    regrow_fraction: float = 0.1
    regrow_criterion: str = "gradient"
    score_window: Optional[int] = None

    def __post_init__(self):
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ValueError(f"target_sparsity must be in [0, 1), got {self.target_sparsity}")
        for name in ("rounds", "updates_per_round"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.regrow_every < 0:
            raise ValueError(f"regrow_every must be ≥ 0 (0: no regrowth), got {self.regrow_every}")
        if self.score_window is not None and (isinstance(self.score_window, bool) or self.score_window < 1):
            raise ValueError(f"score_window must be at least 1 (null: every update), got {self.score_window}")
        if not 0.0 < self.regrow_fraction < 1.0:
            raise ValueError(f"regrow_fraction must be in (0, 1), got {self.regrow_fraction}")
        for name, allowed in (("scope", SCOPES), ("importance", IMPORTANCES),
                              ("regrow_criterion", REGROW_CRITERIA)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def method(self) -> str:
        """``pathways`` or ``dynamic_pathways`` (with regrowth), as the mask files name it."""
        return "dynamic_pathways" if self.regrow_every else "pathways"


def check_schedule(config: PathwayConfig, total_updates: int) -> None:
    """Raise ValueError when the R rounds of N updates do not fit in ``total_updates`` (with
    ``rewind``: when no update is left after the last round's rewind)."""
    needed = config.rounds * config.updates_per_round
    if needed > total_updates:
        raise ValueError(
            f"the pathway schedule reaches target sparsity {config.target_sparsity} after rounds × "
            f"updates_per_round = {config.rounds} × {config.updates_per_round} = {needed} updates, but "
            f"training has {total_updates}: lower rounds or updates_per_round, or train longer")
    if config.rewind and needed == total_updates:
        raise ValueError(
            f"with rewind, the last round (update {needed}) resets the weights to the rewind point: training "
            f"has {total_updates} updates, none left to train the final pathways; train longer")


def kept_after_round(n: int, sparsity: float, r: int, rounds: int) -> int:
    """Weights a pathway of ``n`` keeps after round ``r`` of ``rounds`` (0: ``n``):
    ``n - round(n·(1 - (1 - s)^(r/R)))``, exactly ``n - round(s·n)`` at ``r = R``."""
    if not 0 <= r <= rounds:
        raise ValueError(f"round {r} outside 0..{rounds}")
    pruned = sparsity if r == rounds else 1.0 - (1.0 - sparsity) ** (r / rounds)
    return n - round(pruned * n)


def prune_pathway(mask: torch.Tensor, scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Bool mask (``mask``'s shape) keeping the ``n_keep`` highest ``scores`` among the
    weights ``mask`` keeps (ties: the earlier position is pruned first)."""
    kept = mask.reshape(-1).nonzero().squeeze(1)
    if n_keep > kept.numel():
        raise ValueError(f"pruning cannot grow a pathway: it keeps {kept.numel()} weights, asked to keep {n_keep}")
    out = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    keep = keep_highest(scores.reshape(-1)[kept].float(), kept.numel() - n_keep)
    out[kept[keep]] = True
    return out.view(mask.shape)


def drop_and_regrow(mask: torch.Tensor, drop_scores: torch.Tensor, grow_scores: torch.Tensor,
                    fraction: float) -> torch.Tensor:
    """Bool mask (``mask``'s shape): ``k = round(fraction·kept)`` (at most the weights
    outside) lowest ``drop_scores`` of the pathway dropped, as many highest ``grow_scores``
    among the weights outside ``mask`` added (never one just dropped); same count kept."""
    flat = mask.reshape(-1)
    kept, outside = flat.nonzero().squeeze(1), (~flat).nonzero().squeeze(1)
    k = min(round(fraction * kept.numel()), outside.numel())
    out = flat.clone()
    if k:
        out[kept[select_lowest(drop_scores.reshape(-1)[kept].float(), k)]] = False
        out[outside[select_lowest(grow_scores.reshape(-1)[outside].float(), k, highest=True)]] = True
    return out.view(mask.shape)


class PathwaySchedule(torch.nn.Module):
    """Prunes (and regrows) every language's mask in ``masker`` as updates are counted.

    Args:
        masker: the model's masker; its masks are the initial pathways (normally all
            ones), one per language trained.
        config: the schedule.

    Before training, the trainer checks the run against it (:func:`check_schedule`,
    :meth:`check_languages`) and sets ``save_dir``: where a round's masks are written
    (``masks_round<r>.pt``, :meth:`save_masks`; None, the default: nowhere).

    Buffers: ``updates`` (int64, updates counted), ``bits`` (uint8 (L, ceil(n/8)), the
    current masks packed, languages sorted), ``seen`` (int64 (L,), scored updates per language
    since the last change) and, when used, ``importance`` and ``grow`` (float32 (L, n)) and
    ``rewind_point`` (the prunable weights at the rewind point, (n,)).
    """

    def __init__(self, masker: LanguageMasker, config: PathwayConfig):
        super().__init__()
        masks = masker.masks
        if masks.pattern != UNSTRUCTURED:
            raise ValueError(f"pathways prune unstructured masks; {masks.source} has pattern {masks.pattern}")
        self.masker, self.config, self.languages = masker, config, masks.languages
        self.save_dir: Optional[str] = None
        self._source = {k: masks.meta[k] for k in ("source_fingerprint",) if k in masks.meta}
        starts = list(itertools.accumulate((masks.shapes[name].numel() for name in masks.names), initial=0))
        # flat ranges pruned as one: each tensor (layerwise) or all (global)
        self._segments = [(0, masks.numel)] if config.scope == "global" else list(zip(starts, starts[1:]))
        first = [kept_after_round(end - start, config.target_sparsity, 1, config.rounds)
                 for start, end in self._segments]
        for lang in self.languages:
            flat = masks.flat(lang)
            if any(int(flat[s:e].sum()) < k for (s, e), k in zip(self._segments, first)):
                raise ValueError(f"the initial pathway of {lang} is sparser than round 1's target "
                                 f"({config.scope}); pathways start from denser masks (normally all ones)")
        device = masker.params[0].device
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        self.register_buffer("bits", torch.stack([masks.packed(lang) for lang in self.languages]).to(device))
        self.register_buffer("seen", torch.zeros(len(self.languages), dtype=torch.int64, device=device))
        taylor, regrow = config.importance == "taylor", bool(config.regrow_every)
        # weight-sized per language: kept out of the state dict (checkpoints, averaged models);
        # the trainer saves them beside checkpoint.pth (accumulator_state)
        self.register_buffer("importance", self._zeros(len(self.languages)) if taylor else None, persistent=False)
        self.register_buffer("grow", self._zeros(len(self.languages)) if regrow else None, persistent=False)
        self.register_buffer("sink", self._zeros() if regrow else None, persistent=False)
        self.register_buffer("rewind_point", self._weights().to(masker.params[0].dtype) if config.rewind else None)
        self._sinks_on = False
        self.register_load_state_dict_post_hook(lambda module, incompatible: module._restored())
        self._restored()

    def accumulator_state(self) -> Dict[str, torch.Tensor]:
        """``updates`` and the score accumulators in use (``importance``, ``grow``), which the
        state dict leaves out, for resuming mid-round; empty without accumulators."""
        state = {name: getattr(self, name) for name in ACCUMULATORS if getattr(self, name) is not None}
        return {"updates": self.updates.clone(), **state} if state else {}

    def load_accumulator_state(self, state: Dict[str, torch.Tensor], source: str) -> None:
        """Restore :meth:`accumulator_state` taken at this schedule's update count; one of
        another count (e.g. a run killed between the two saves) is refused with a warning,
        the scores then restart from zero for the current round."""
        if int(state["updates"]) != int(self.updates):
            logging.warning(f"pathways: {source} holds the scores of update {int(state['updates'])}, the checkpoint "
                            f"is at update {int(self.updates)}: the scores restart from zero")
            return
        for name in ACCUMULATORS:
            if getattr(self, name) is not None:
                getattr(self, name).copy_(state[name])

    def check_languages(self, languages: Sequence[str]) -> None:
        """Raise ValueError unless ``languages`` (the training data's) are the pathways'
        languages: each needs a pathway, each pathway data (else it would never be trained)."""
        no_mask = sorted(set(languages) - set(self.languages))
        if no_mask:
            raise ValueError(f"no pathway for language(s) {', '.join(no_mask)} of the training data; "
                             f"the pathways (initial masks or pathways.languages) are: {', '.join(self.languages)}")
        no_data = sorted(set(self.languages) - set(languages))
        if no_data:
            raise ValueError(f"pathway language(s) {', '.join(no_data)} have no training data: their pathways "
                             "would never be trained; train them or drop them from the initial masks or "
                             "pathways.languages")

    def _rewind_pairs(self):
        """(prunable weight, its view of ``rewind_point``) pairs."""
        return zip(self.masker.params, self.masker.masks.split(self.rewind_point).values())

    def record_rewind_point(self) -> None:
        """With ``rewind``: take the current prunable weights as the rewind point (the
        trainer calls it when training starts); without it, nothing."""
        if self.rewind_point is not None:
            with torch.no_grad():
                for p, start in self._rewind_pairs():
                    start.copy_(p)

    def _rewind(self) -> None:
        """Reset every prunable weight to ``rewind_point``."""
        with torch.no_grad():
            for p, start in self._rewind_pairs():
                p.copy_(start)

    def _zeros(self, *lead: int) -> torch.Tensor:
        return torch.zeros(*lead, self.masker.masks.numel, dtype=torch.float32, device=self.masker.params[0].device)

    def _restored(self) -> None:
        """After construction or loading a state dict: the masker gets the masks and, if the
        next update is scored, the gradient sinks."""
        self._push_masks()
        self._set_sinks(int(self.updates) + 1)

    def _next_change(self, u: int) -> Optional[int]:
        """The update (≥ ``u``, counted from 1) after which the masks change next, or None."""
        config, changes = self.config, []
        round_end = -(-u // config.updates_per_round)
        if round_end <= config.rounds:
            changes.append(round_end * config.updates_per_round)
        if config.regrow_every:
            changes.append(-(-u // config.regrow_every) * config.regrow_every)
        return min(changes, default=None)

    def _scored(self, u: int) -> bool:
        """Whether update ``u`` adds to the scores: a change follows within ``score_window``."""
        change = self._next_change(u)
        return change is not None and (self.config.score_window is None or change - u < self.config.score_window)

    def _set_sinks(self, u: int) -> None:
        """Connect the masker's gradient sinks for the backward of update ``u`` if it is
        scored (and regrowth needs them), disconnect them otherwise (no backward cost)."""
        on = self.sink is not None and self._scored(u)
        self.masker.set_grad_sinks(list(self.masker.masks.split(self.sink).values()) if on else None)
        self._sinks_on = on

    def _apply(self, fn, *args, **kwargs):
        """Moving the module moves ``sink``: hand the masker the moved tensor."""
        super()._apply(fn, *args, **kwargs)
        if self._sinks_on:
            self._set_sinks(int(self.updates) + 1)
        return self

    @property
    def rounds_done(self) -> int:
        """Pruning rounds applied so far (0..R)."""
        return min(int(self.updates) // self.config.updates_per_round, self.config.rounds)

    def count_update(self) -> None:
        """After an optimizer step of the active language: accumulate its scores, count the
        update, and change the masks where the schedule says so."""
        lang = self.masker.active
        if lang not in self.languages:
            raise RuntimeError(f"an update of {'the dense model' if lang is None else f'language {lang}'}: "
                               f"the pathway schedule trains {', '.join(self.languages)} only")
        i = self.languages.index(lang)
        scored = self._scored(int(self.updates) + 1)
        with torch.no_grad():
            if scored and self.importance is not None:
                for acc, p in zip(self.masker.masks.split(self.importance[i]).values(), self.masker.params):
                    if p.grad is not None:
                        accumulate_taylor_(acc, p.grad, p)
            if self._sinks_on:
                if torch.isfinite(self.sink.sum()):  # one pass, no bool copy of the sink
                    self.grow[i] += self.sink
                self.sink.zero_()
        if scored:
            self.seen[i] += 1
        self.updates += 1
        t, config = int(self.updates), self.config
        if t % config.updates_per_round == 0 and t // config.updates_per_round <= config.rounds:
            self._change(self._prune)
            if config.rewind:
                self._rewind()
            if self.save_dir is not None:
                self.save_masks(os.path.join(self.save_dir, f"masks_round{self.rounds_done}.pt"))
        elif config.regrow_every and t % config.regrow_every == 0:
            self._change(self._regrow)
        if (self.sink is not None and self._scored(t + 1)) != self._sinks_on:
            self._set_sinks(t + 1)

    def _weights(self) -> torch.Tensor:
        """float32 (n,): the prunable weights, concatenated in ``names`` order."""
        return torch.cat([p.detach().reshape(-1).float() for p in self.masker.params])

    def _prune(self, i: int, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        scores = weights.abs()
        if self.importance is not None:
            if self.seen[i]:
                scores = self.importance[i]
            else:
                logging.warning(f"pathways: no scored update of {self.languages[i]} in round {self.rounds_done}: "
                                "its pathway is pruned by magnitude")
        out = torch.empty_like(mask)
        for start, end in self._segments:
            n_keep = kept_after_round(end - start, self.config.target_sparsity, self.rounds_done, self.config.rounds)
            out[start:end] = prune_pathway(mask[start:end], scores[start:end], n_keep)
        return out

    def _regrow(self, i: int, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if not self.seen[i]:
            logging.warning(f"pathways: no scored update of {self.languages[i]} since the last mask change "
                            f"(update {int(self.updates)}): its pathway is kept")
            return mask
        drop = weights.abs() if self.importance is None else self.importance[i]
        grow = self.grow[i] if self.config.regrow_criterion == "gradient" else self.grow[i] * weights.square()
        out = torch.empty_like(mask)
        for start, end in self._segments:
            out[start:end] = drop_and_regrow(mask[start:end], drop[start:end], grow[start:end],
                                             self.config.regrow_fraction)
        return out

    def _change(self, update) -> None:
        """New masks for every language from ``update(i, flat bool mask, flat weights)``,
        unpacked from and packed into ``bits`` on its device; given to the masker;
        accumulators reset."""
        if self.grow is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.grow)  # sinks are per rank; the rest is the same on all ranks
        weights = self._weights()
        for i, bits in enumerate(self.bits):
            pack_bits(update(i, unpack_bits(bits, self.masker.masks.numel).bool(), weights), out=bits)
        for acc in (self.importance, self.grow, self.seen):
            if acc is not None:
                acc.zero_()
        self._push_masks()

    def current_masks(self) -> SubnetMasks:
        """The current masks (from ``bits``) with their meta: method, scope, ``sparsity``
        (reached, over all languages), ``target_sparsity``, ``round``, ``updates``, config and
        the initial masks' ``source_fingerprint``."""
        masks = self.masker.masks
        bits = {lang: self.bits[i].to("cpu", copy=True) for i, lang in enumerate(self.languages)}
        kept = sum(int(np.bitwise_count(b.numpy()).sum()) for b in bits.values())
        meta = {"method": self.config.method, "scope": self.config.scope, "pattern": UNSTRUCTURED,
                "sparsity": 1.0 - kept / (masks.numel * len(bits)), "target_sparsity": self.config.target_sparsity,
                "round": self.rounds_done, "updates": int(self.updates), "config": dataclasses.asdict(self.config),
                **self._source}
        return SubnetMasks(masks.names, [masks.shapes[n] for n in masks.names], bits, meta,
                           source=f"pathways after update {int(self.updates)}")

    def _push_masks(self) -> None:
        self.masker.set_masks(self.current_masks())

    def save_masks(self, path: str) -> None:
        """Write the current masks as a mask file (:meth:`SubnetMasks.save`) for ``mask_report``
        and S3Net fine-tuning; meta as :meth:`current_masks`, ``source_fingerprint`` that of
        the current prunable weights."""
        masks = self.current_masks()
        masks.meta["source_fingerprint"] = parameter_fingerprint(self.masker.module, masks.names)
        masks.save(path)

