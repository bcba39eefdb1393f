"""Peak memory of one call: resident (Linux) or of live tensors (shared by the benchmarks)."""

from typing import Callable


def status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_kb(call: Callable[[], object]) -> int:
    """Peak resident set size of ``call`` above the resident size before it (kB): the
    kernel's high-water mark is reset first (``/proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kb("VmRSS")
    call()
    return status_kb("VmHWM") - before


def peak_tensor_kb(call: Callable[[], object]) -> int:
    """Peak bytes of CPU tensors allocated during ``call`` and alive at once (kB), op by op
    from the profiler's memory events: what the allocator's heap retains is not counted; a
    tensor memory-mapped from a file counts in full from its mapping on."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    live = peak = 0
    for event in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak // 1024
