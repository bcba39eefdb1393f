"""Masked (S3Net) training step vs dense step: time, overhead in weight copies, peak memory.

A step is ESPnet's: wav2vec 2.0 forward on a fixed batch (``--batch`` utterances of
``--seconds`` s, fixed span masks and distractors), backward, Adam step, zero_grad. A
masked step first activates its language (a switch at every step, the worst case: its
mask is unpacked) and deactivates it after. Random masks of ``--langs`` languages on
the prunable weights (each kept with probability 0.5).

Time, in this process (one CPU thread, or the GPU with a synchronize around each timed
call): after one warm-up round, every repeat runs in turn a dense step (a copy of the
model with plain ``nn.Linear`` layers), a masked step with ``optim_state_policy:
shared`` and a masked step with ``frozen`` (each on its own copy of the model and
optimizer) and one copy of all prunable weights into preallocated buffers
(``torch._foreach_copy_``), in an order reversed every round. The steps of a repeat
start from the same seed (the same dropout, LayerDrop and Gumbel draws). Medians over
``--repeats`` of the per-round figures give ``time_ratio`` = shared / dense,
``overhead_weight_copies`` = (shared - dense) / median copy and ``frozen_vs_shared`` =
frozen / shared.

Peak memory: each arm (dense, shared, frozen) runs alone in a fresh process: build, load
the masks, three steps (three languages); median of ``--memory_runs`` processes per arm.
Its peak for the whole run is the process's
peak resident set size (``VmHWM``, interpreter and libraries included) on CPU and
``torch.cuda.max_memory_allocated`` on GPU; ratios are against the dense arm.

Targets (xlsr_base, 4 x 8 s): overhead_weight_copies <= 6, peak_mem_ratio <= 1.05,
time_ratio <= 1.03 on CPU and <= 1.01 on GPU.
"""

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from typing import List, Optional, Tuple

import torch

from espnet_s3net.benchmarks._memory import status_kb
from espnet_s3net.benchmarks._timing import timed

ARMS = ("dense", "shared", "frozen")
MEMORY_STEPS = 3


def _build(config: str, device: str):
    """The XLSR model (seeded) in training mode on ``device``."""
    from espnet_s3net.models.xlsr import XLSRModel, get_config

    torch.manual_seed(0)
    return XLSRModel(get_config(config)).to(device).train()


def _batch(model, batch: int, seconds: float, device: str) -> Tuple[torch.Tensor, ...]:
    """wav (B, S), lengths (B,), span mask (B, T) and distractors (M, K), on ``device``."""
    from espnet_s3net.models.contrastive import sample_negatives
    from espnet_s3net.models.span_mask import span_mask

    cfg = model.cfg
    gen = torch.Generator().manual_seed(1)
    samples = int(16000 * seconds)
    frames = samples
    for _, kernel, stride in cfg.conv_layers:
        frames = (frames - kernel) // stride + 1
    mask = span_mask(batch, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks, generator=gen)
    negatives = sample_negatives(mask.nonzero()[:, 0], cfg.num_negatives, generator=gen)
    wav, lengths = torch.randn(batch, samples, generator=gen), torch.full((batch,), samples)
    return tuple(t.to(device) for t in (wav, lengths, mask, negatives))


def _masks(model, langs: int):
    """Random masks for languages l0..l{langs-1}: each prunable weight kept with probability 0.5."""
    from espnet_s3net.masks.mask_file import SubnetMasks
    from espnet_s3net.masks.pruning import prunable_parameters

    gen = torch.Generator().manual_seed(2)
    params = prunable_parameters(model)
    return SubnetMasks.from_dense(
        {f"l{i}": {n: torch.rand(p.shape, generator=gen) < 0.5 for n, p in params.items()} for i in range(langs)}, {}
    )


class _Arm:
    """A model, its Adam optimizer and, for a masked arm, its masker (``policy``)."""

    def __init__(self, model, masks, policy: Optional[str]):
        from espnet_s3net.masks.language_masker import LanguageMasker

        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        self.masker = None
        if policy is not None:
            self.masker = LanguageMasker(model, masks, missing="error", optim_state_policy=policy)
            self.masker.attach_optimizer(self.optimizer)

    def step(self, batch, seed: int, lang: Optional[str] = None) -> None:
        """One training step (``lang``'s sub-network when given)."""
        if lang is not None:
            self.masker.activate(lang)
        torch.manual_seed(seed)
        wav, lengths, mask, negatives = batch
        self.model.forward_pretrain(wav, lengths, mask, negatives).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if lang is not None:
            self.masker.deactivate()


def _peak_kb(device: str) -> int:
    """Peak memory of this process so far (kB): VmHWM on CPU, CUDA max allocated on GPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) // 1024
    return status_kb("VmHWM")


def _memory_arm(args) -> dict:
    """Child process: one arm's steps; its peak memory for the whole run."""
    from espnet_s3net.masks.mask_file import SubnetMasks

    model = _build(args.config, args.device)
    masks = SubnetMasks.load(args.masks) if args.arm != "dense" else None
    arm = _Arm(model, masks, None if args.arm == "dense" else args.arm)
    batch = _batch(model, args.batch, args.seconds, args.device)
    for i in range(MEMORY_STEPS):
        arm.step(batch, i, None if masks is None else masks.languages[i % len(masks.languages)])
    return {"peak_kb": _peak_kb(args.device)}


def _run_memory_arm(arm: str, masks_path: str, args) -> int:
    cmd = [sys.executable, "-m", "espnet_s3net.bin.benchmark", "masked_step", "--arm", arm, "--masks", masks_path,
           "--config", args.config, "--batch", str(args.batch), "--seconds", str(args.seconds),
           "--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_kb"]


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark masked_step", description=__doc__)
    parser.add_argument("--config", default="xlsr_small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--langs", type=int, default=10)
    parser.add_argument("--memory_runs", type=int, default=3,
                        help="processes per arm for the peak memory (median)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--masks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    on_gpu = args.device.startswith("cuda")
    if not on_gpu:
        torch.set_num_threads(1)
    if args.arm:
        return _memory_arm(args)

    model = _build(args.config, "cpu")
    masks = _masks(model, args.langs)
    with tempfile.TemporaryDirectory() as tmp:
        masks_path = os.path.join(tmp, "masks.pt")
        masks.save(masks_path)
        runs = {arm: [] for arm in ARMS}
        for _ in range(args.memory_runs):  # arms alternate; the allocator's peak varies by a few %
            for arm in ARMS:
                runs[arm].append(_run_memory_arm(arm, masks_path, args))
        peaks = {arm: statistics.median(values) for arm, values in runs.items()}

    model.to(args.device)
    dense = _Arm(copy.deepcopy(model), masks, None)  # plain nn.Linear layers
    frozen_model = copy.deepcopy(model)
    shared = _Arm(model, masks, "shared")
    frozen = _Arm(frozen_model, masks, "frozen")
    batch = _batch(model, args.batch, args.seconds, args.device)
    params = dict(model.named_parameters())
    weights = [params[name] for name in masks.names]
    buffers = [torch.empty_like(w) for w in weights]
    langs = masks.languages
    steps = {
        "dense": lambda repeat, lang: dense.step(batch, repeat),
        "shared": lambda repeat, lang: shared.step(batch, repeat, lang),
        "frozen": lambda repeat, lang: frozen.step(batch, repeat, lang),
        "weight_copy": lambda repeat, lang: torch._foreach_copy_(buffers, weights),
    }
    times = {name: [] for name in steps}
    for repeat in range(args.repeats + 1):  # round 0: warm-up
        lang = langs[repeat % len(langs)]
        order = list(steps) if repeat % 2 else list(reversed(steps))  # no arm always runs first
        round_times = {name: timed(partial(steps[name], repeat, lang), args.device) for name in order}
        if repeat > 0:
            for name, seconds in round_times.items():
                times[name].append(seconds)
    median = {name: statistics.median(values) for name, values in times.items()}
    # paired within a round: the machine's drift between rounds cancels
    overhead = statistics.median(m - d for m, d in zip(times["shared"], times["dense"]))

    result = {
        "time_ratio": statistics.median(m / d for m, d in zip(times["shared"], times["dense"])),
        "overhead_weight_copies": overhead / median["weight_copy"],
        "peak_mem_ratio": peaks["shared"] / peaks["dense"],
        "frozen_vs_shared": statistics.median(f / m for f, m in zip(times["frozen"], times["shared"])),
        "peak_mem_ratio_frozen": peaks["frozen"] / peaks["dense"],
    }
    targets = {"time_ratio": 1.01 if on_gpu else 1.03, "overhead_weight_copies": 6.0, "peak_mem_ratio": 1.05}
    return {
        **result, "targets": targets, "meets_targets": {k: result[k] <= v for k, v in targets.items()},
        "median_s": median, "peak_kb": peaks,
        "peak_memory": "torch.cuda.max_memory_allocated" if on_gpu else "process VmHWM",
        "config": args.config, "device": args.device, "batch": args.batch, "seconds": args.seconds,
        "languages": args.langs, "prunable_weights": masks.numel, "repeats": args.repeats,
        "threads": None if on_gpu else 1,
    }
