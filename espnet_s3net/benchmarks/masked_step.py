"""Masked (S3Net) training step vs dense step: time, overhead in weight copies, peak memory.

A step is ESPnet's: wav2vec 2.0 forward on a fixed batch (``--batch`` utterances of
``--seconds`` s, fixed span masks and distractors), backward, Adam step, zero_grad. A
masked step first activates its language (a switch at every step, the worst case: on a
GPU its mask is unpacked) and deactivates it after. Random masks of ``--langs`` languages
on the prunable weights (each kept with probability 0.5).

Time, in this process (one CPU thread, or the GPU with a synchronize around each timed
call): after one warm-up round, every repeat runs in turn a dense step (a copy of the
model with plain ``nn.Linear`` layers), a masked step with ``optim_state_policy:
shared`` and a masked step with ``frozen`` (each on its own copy of the model and
optimizer) and one copy of all prunable weights into preallocated buffers
(``torch._foreach_copy_``), in an order reversed every round. The steps of a repeat
start from the same seed (the same dropout, LayerDrop and Gumbel draws). Medians over
``--repeats`` of the per-round figures give ``time_ratio`` = shared / dense,
``overhead_weight_copies_at_batch`` = (shared - dense) / median copy and
``frozen_vs_shared`` = frozen / shared. ``time_ratio_rounds`` lists every round's ratio
and ``peak_kb_runs`` every memory process's peak: the spread behind the medians.

``overhead_weight_copies``: the same paired difference, dense and shared arms only, on a
batch of one ``--overhead_seconds`` utterance, in the same process. The masking passes are
weight-sized, so the overhead does not depend on the batch, while the step's own noise
grows with it: at 4 × 8 s (a step of many seconds on CPU) a few percent of noise are
several weight copies; the short batch measures the same overhead with little of it.

Peak memory: each arm (dense, shared, frozen) runs alone in a fresh process: build, load
the masks, three steps (three languages); median of ``--memory_runs`` processes per arm.
Its peak for the whole run is the process's
peak resident set size (``VmHWM``, interpreter and libraries included) on CPU and
``torch.cuda.max_memory_allocated`` on GPU; ratios are against the dense arm. On CPU the
resident size also holds what glibc's heap keeps after frees (at ``xlsr_base`` a good part of
either arm's heap is free at the peak, in amounts that depend on the order of allocations);
``--malloc_mmap_threshold BYTES`` runs every memory arm with glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed, so larger allocations are mapped and returned when freed
and the resident size follows the live memory (both arms alike; steps get slower from page
faults, so training keeps glibc's defaults). ``peak_tensor_ratio`` (CPU) takes the heap out:
one more process per arm runs the same under the profiler, whose memory events give the
peak bytes of live tensors (``peak_tensor_kb``, :func:`espnet_s3net.benchmarks._memory.peak_tensor_kb`;
the memory-mapped mask file counts in full, 1/8 byte per weight and language, where the
resident size holds only the pages of the languages used).

Targets (xlsr_base, 4 x 8 s): overhead_weight_copies <= 6, peak_mem_ratio <= 1.05,
time_ratio <= 1.03 on CPU and <= 1.01 on GPU. The masking passes are those of
:mod:`espnet_s3net.masks.mask_kernels` (``benchmark mask_ops`` times them one by one).
"""

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import List

import torch

from espnet_s3net.benchmarks._memory import peak_tensor_kb, status_kb
from espnet_s3net.benchmarks._timing import alternating_rounds, on_device
from espnet_s3net.benchmarks._xlsr_step import StepArm, build_model, fixed_batch

ARMS = ("dense", "shared", "frozen")
MEMORY_STEPS = 3


def _masks(model, langs: int):
    """Random masks for languages l0..l{langs-1}: each prunable weight kept with probability 0.5."""
    from espnet_s3net.masks.mask_file import SubnetMasks
    from espnet_s3net.masks.pruning import prunable_parameters

    gen = torch.Generator().manual_seed(2)
    params = prunable_parameters(model)
    return SubnetMasks.from_dense(
        {f"l{i}": {n: torch.rand(p.shape, generator=gen) < 0.5 for n, p in params.items()} for i in range(langs)}, {}
    )


def _peak_kb(device: str) -> int:
    """Peak memory of this process so far (kB): VmHWM on CPU, CUDA max allocated on GPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) // 1024
    return status_kb("VmHWM")


def _memory_arm(args) -> dict:
    """Child process: one arm's run (build, masks, steps); its peak memory (``--tensor_peak``:
    of live tensors)."""
    from espnet_s3net.masks.mask_file import SubnetMasks

    def run():
        model = build_model(args.config, args.device)
        masks = SubnetMasks.load(args.masks) if args.arm != "dense" else None
        arm = StepArm(model, masks, None if args.arm == "dense" else args.arm)
        batch = fixed_batch(model, args.batch, args.seconds, args.device)
        for i in range(MEMORY_STEPS):
            arm.step(batch, i, None if masks is None else masks.languages[i % len(masks.languages)])

    if args.tensor_peak:
        return {"peak_kb": peak_tensor_kb(run)}
    run()
    return {"peak_kb": _peak_kb(args.device)}


def _run_memory_arm(arm: str, masks_path: str, args, tensor_peak: bool = False) -> int:
    cmd = [sys.executable, "-m", "espnet_s3net.bin.benchmark", "masked_step", "--arm", arm, "--masks", masks_path,
           "--config", args.config, "--batch", str(args.batch), "--seconds", str(args.seconds),
           "--device", args.device, *(["--tensor_peak"] if tensor_peak else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if args.malloc_mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_kb"]


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark masked_step", description=__doc__)
    parser.add_argument("--config", default="xlsr_small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--overhead_seconds", type=float, default=1.0,
                        help="utterance length of the one-utterance batch of overhead_weight_copies")
    parser.add_argument("--langs", type=int, default=10)
    parser.add_argument("--memory_runs", type=int, default=3,
                        help="processes per arm for the peak memory (median)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--malloc_mmap_threshold", type=int,
                        help="glibc MALLOC_MMAP_THRESHOLD_ (bytes) of the peak-memory processes (default: glibc's)")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--masks", help=argparse.SUPPRESS)
    parser.add_argument("--tensor_peak", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    on_gpu = on_device(args.device)
    if args.arm:
        return _memory_arm(args)

    model = build_model(args.config, "cpu")
    masks = _masks(model, args.langs)
    with tempfile.TemporaryDirectory() as tmp:
        masks_path = os.path.join(tmp, "masks.pt")
        masks.save(masks_path)
        peak_runs = {arm: [] for arm in ARMS}
        for _ in range(args.memory_runs):  # arms alternate; the allocator's peak varies by a few %
            for arm in ARMS:
                peak_runs[arm].append(_run_memory_arm(arm, masks_path, args))
        peaks = {arm: statistics.median(values) for arm, values in peak_runs.items()}
        tensor_peaks = None if on_gpu else {arm: _run_memory_arm(arm, masks_path, args, True) for arm in ARMS}

    model.to(args.device)
    dense = StepArm(copy.deepcopy(model), masks, None)  # plain nn.Linear layers
    frozen_model = copy.deepcopy(model)
    shared = StepArm(model, masks, "shared")
    frozen = StepArm(frozen_model, masks, "frozen")
    batch = fixed_batch(model, args.batch, args.seconds, args.device)
    params = dict(model.named_parameters())
    weights = [params[name] for name in masks.names]
    buffers = [torch.empty_like(w) for w in weights]
    langs = masks.languages
    times = alternating_rounds({
        "dense": lambda repeat: dense.step(batch, repeat),
        "shared": lambda repeat: shared.step(batch, repeat, langs[repeat % len(langs)]),
        "frozen": lambda repeat: frozen.step(batch, repeat, langs[repeat % len(langs)]),
        "weight_copy": lambda repeat: torch._foreach_copy_(buffers, weights),
    }, args.repeats, args.device)
    short = fixed_batch(model, 1, args.overhead_seconds, args.device)
    short_times = alternating_rounds({
        "dense": lambda repeat: dense.step(short, repeat),
        "shared": lambda repeat: shared.step(short, repeat, langs[repeat % len(langs)]),
        "weight_copy": lambda repeat: torch._foreach_copy_(buffers, weights),
    }, 3 * args.repeats, args.device)
    median = {name: statistics.median(values) for name, values in times.items()}

    def overhead_copies(runs):
        # paired within a round: the machine's drift between rounds cancels
        return (statistics.median(m - d for m, d in zip(runs["shared"], runs["dense"]))
                / statistics.median(runs["weight_copy"]))

    result = {
        "time_ratio": statistics.median(m / d for m, d in zip(times["shared"], times["dense"])),
        "overhead_weight_copies": overhead_copies(short_times),
        "overhead_weight_copies_at_batch": overhead_copies(times),
        "peak_mem_ratio": peaks["shared"] / peaks["dense"],
        "frozen_vs_shared": statistics.median(f / m for f, m in zip(times["frozen"], times["shared"])),
        "peak_mem_ratio_frozen": peaks["frozen"] / peaks["dense"],
        "peak_tensor_ratio": None if tensor_peaks is None else tensor_peaks["shared"] / tensor_peaks["dense"],
    }
    targets = {"time_ratio": 1.01 if on_gpu else 1.03, "overhead_weight_copies": 6.0, "peak_mem_ratio": 1.05}
    return {
        **result, "targets": targets, "meets_targets": {k: result[k] <= v for k, v in targets.items()},
        "median_s": median, "median_s_one_utterance": {k: statistics.median(v) for k, v in short_times.items()},
        "peak_kb": peaks,
        # the spread behind the medians: per-round ratios and every memory process's peak
        "time_ratio_rounds": [m / d for m, d in zip(times["shared"], times["dense"])],
        "peak_kb_runs": peak_runs,
        "peak_tensor_kb": tensor_peaks,
        "peak_memory": "torch.cuda.max_memory_allocated" if on_gpu else "process VmHWM",
        "malloc_mmap_threshold": args.malloc_mmap_threshold,
        "config": args.config, "device": args.device, "batch": args.batch, "seconds": args.seconds,
        "overhead_seconds": args.overhead_seconds,
        "languages": args.langs, "prunable_weights": masks.numel, "repeats": args.repeats,
        "threads": None if on_gpu else 1,
    }
