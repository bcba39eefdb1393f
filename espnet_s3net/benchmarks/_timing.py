"""Wall-clock time of one call, on CPU or CUDA (shared by the benchmarks)."""

import time
from typing import Callable

import torch


def timed(call: Callable[[], object], device: str) -> float:
    """Wall-clock seconds of ``call`` (a CUDA ``device`` is synchronized before and after)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter() - start
