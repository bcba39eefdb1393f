"""Wall-clock time of calls, on CPU or CUDA (shared by the benchmarks)."""

import time
from functools import partial
from typing import Callable, Dict, List

import torch


def on_device(device: str) -> bool:
    """Whether ``device`` is a CUDA device; on CPU, set one thread for the timings (the
    benchmarks' ratios are per core)."""
    if device.startswith("cuda"):
        return True
    torch.set_num_threads(1)
    return False


def timed(call: Callable[[], object], device: str) -> float:
    """Wall-clock seconds of ``call`` (a CUDA ``device`` is synchronized before and after)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def alternating_rounds(calls: Dict[str, Callable[[int], object]], rounds: int, device: str) -> Dict[str, List[float]]:
    """Seconds of each call in each of ``rounds`` rounds, after a warm-up round (not returned).
    A round ``r`` (0: the warm-up) runs every ``calls[name](r)`` once, in an order reversed
    every round (no call always runs first)."""
    times = {name: [] for name in calls}
    for r in range(rounds + 1):
        order = list(calls) if r % 2 else list(reversed(calls))
        round_times = {name: timed(partial(calls[name], r), device) for name in order}
        if r > 0:
            for name, seconds in round_times.items():
                times[name].append(seconds)
    return times
