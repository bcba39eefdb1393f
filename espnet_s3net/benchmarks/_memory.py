"""Peak resident memory of one call, on Linux (shared by the benchmarks)."""

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
