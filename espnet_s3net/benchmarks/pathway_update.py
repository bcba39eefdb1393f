"""Cost of a pathway schedule (ASR pathways) per training update, its mask updates amortised.

Two arms, each on its own copy of the XLSR model (seeded) and Adam, train the same masked
step (:class:`~espnet_s3net.benchmarks._xlsr_step.StepArm`: wav2vec 2.0 forward on a fixed
batch of ``--batch`` utterances of ``--seconds`` s, backward, Adam step; a language switch at
every step) through all-ones pathways of ``--langs`` languages: ``plain`` without a schedule
(masked training as S3Net's), ``schedule`` with a
:class:`~espnet_s3net.masks.pathways.PathwaySchedule` counting every update (``taylor``
importance and ``gradient`` regrowth every ``--updates_per_round`` updates: per-update score
accumulation and gradient sinks). The arms alternate (``--steps`` rounds after a warm-up
round, an order reversed every round, the same seed in a round); no timed step ends a round.

Then, timed alone: one ``count_update`` inside a round (after a backward: the score
accumulation, without the sinks' share, which the backward holds), and one mask update:
the ``count_update`` that ends round 1 (the largest pruning, every language's full
pathway), which prunes all languages and writes the round's mask file (as rank 0 does).
With regrowth every N = ``--updates_per_round`` updates there is one mask change (a round
or, after the rounds, a regrow) per N updates.

With ``--score_window`` W (default 100; 0: none) the scores are accumulated only over the W
updates before each mask change: the timed steps are taken inside that window (the
schedule's count set to N - W first), and the steps outside it, which add no pass, are
counted as plain steps.

``ratio`` = 1 + (W / N)·(schedule step / plain step - 1) + mask update / (N · plain step),
W = N without a window; the step ratio is the median of the per-round ratios; target ≤
1.02 (``xlsr_base`` on CPU). One CPU thread, or the GPU with a synchronize around each
timed call.
"""

import argparse
import copy
import statistics
import tempfile
from typing import List

import torch

from espnet_s3net.benchmarks._timing import alternating_rounds, on_device, timed
from espnet_s3net.benchmarks._xlsr_step import StepArm, build_model, fixed_batch

TARGET = 1.02


def main(argv: List[str]) -> dict:
    from espnet_s3net.masks.mask_file import SubnetMasks
    from espnet_s3net.masks.pathways import PathwayConfig, PathwaySchedule
    from espnet_s3net.masks.pruning import prunable_parameters
    from espnet_s3net.train.schedules import update_counter_hook

    parser = argparse.ArgumentParser(prog="benchmark pathway_update", description=__doc__)
    parser.add_argument("--config", default="xlsr_small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per arm (after one warm-up step)")
    parser.add_argument("--langs", type=int, default=10)
    parser.add_argument("--updates_per_round", type=int, default=1000)
    parser.add_argument("--score_window", type=int, default=100,
                        help="PathwayConfig.score_window; 0: none, every update is scored")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    if args.score_window < 0:
        parser.error("--score_window must be >= 0 (0: every update is scored)")
    window = min(args.score_window or args.updates_per_round, args.updates_per_round)
    if window < args.steps + 3:
        parser.error(f"--updates_per_round and --score_window must be at least {args.steps + 3}: the "
                     f"{args.steps + 2} updates run (a warm-up, --steps, the timed accumulation) are all scored "
                     "and none changes the masks")
    on_gpu = on_device(args.device)

    model = build_model(args.config, args.device)
    langs = [f"l{i}" for i in range(args.langs)]
    ones = {name: torch.ones(p.shape, dtype=torch.bool) for name, p in prunable_parameters(model).items()}
    masks = SubnetMasks.from_dense({lang: ones for lang in langs}, {})
    plain = StepArm(copy.deepcopy(model), masks, "shared")
    scheduled = StepArm(model, masks, "shared")
    model.pathway_schedule = schedule = PathwaySchedule(scheduled.masker, PathwayConfig(
        target_sparsity=0.5, updates_per_round=args.updates_per_round, importance="taylor",
        regrow_every=args.updates_per_round, score_window=args.score_window or None))
    schedule.updates.fill_(args.updates_per_round - window)  # the timed updates are scored (sinks: from the warm-up)
    scheduled.optimizer.register_step_post_hook(update_counter_hook(model))  # after the masker's, as the trainer
    batch = fixed_batch(model, args.batch, args.seconds, args.device)
    times = alternating_rounds({
        "plain": lambda r: plain.step(batch, r, langs[r % len(langs)]),
        "schedule": lambda r: scheduled.step(batch, r, langs[r % len(langs)]),
    }, args.steps, args.device)

    # the per-update accumulation alone (the sinks' share is inside the backward): low noise
    scheduled.masker.activate(langs[0])
    torch.manual_seed(0)
    model.forward_pretrain(*batch).loss.backward()
    count_s = timed(schedule.count_update, args.device)
    scheduled.optimizer.zero_grad(set_to_none=True)
    scheduled.masker.deactivate()

    with tempfile.TemporaryDirectory() as tmp:
        schedule.save_dir = tmp
        schedule.updates.fill_(args.updates_per_round - 1)  # the next update ends round 1
        schedule.seen.fill_(1)  # every language trained in the round: pruned by its Taylor scores
        scheduled.masker.activate(langs[0])
        update_s = timed(schedule.count_update, args.device)
        scheduled.masker.deactivate()

    step_s = {name: statistics.median(values) for name, values in times.items()}
    step_ratio = statistics.median(s / p for s, p in zip(times["schedule"], times["plain"]))
    ratio = 1 + window / args.updates_per_round * (step_ratio - 1) + update_s / args.updates_per_round / step_s["plain"]
    return {
        "ratio": ratio, "target": TARGET, "meets_target": ratio <= TARGET, "scored_step_ratio": step_ratio,
        "step_ms": {name: 1e3 * s for name, s in step_s.items()},
        # paired within a round: the machine's drift between rounds cancels
        "accumulation_overhead_ms": 1e3 * statistics.median(s - p for s, p in zip(times["schedule"], times["plain"])),
        "count_update_ms": 1e3 * count_s,
        "mask_update_ms": 1e3 * update_s,
        "mask_update_per_update_ms": 1e3 * update_s / args.updates_per_round,
        "updates_per_round": args.updates_per_round, "score_window": args.score_window, "importance": "taylor",
        "regrow_criterion": "gradient",
        "config": args.config, "device": args.device, "batch": args.batch, "seconds": args.seconds,
        "languages": args.langs, "prunable_weights": masks.numel, "steps": args.steps,
        "threads": None if on_gpu else 1,
    }
