"""Logging set-up shared by the entry points (ESPnet's format) and progress lines with an ETA."""

import logging
import time
from typing import Iterable, Iterator, Optional, TypeVar

FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"

T = TypeVar("T")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)


class Progress:
    """Logs ``<what>: done/total (percent), elapsed, ETA`` for long work that is not training.

    A line is logged at most every ``interval_s`` seconds (and always for the last item), so
    a long stage shows it is alive without flooding its log. Times are wall-clock seconds.
    """

    def __init__(self, total: int, what: str, interval_s: float = 10.0):
        self.total, self.what, self.interval_s = int(total), what, interval_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done; log a line when due."""
        self.done += n
        now = time.monotonic()
        if self.done < self.total and now - self.last < self.interval_s:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.done * max(self.total - self.done, 0) if self.done else float("nan")
        percent = 100.0 * self.done / self.total if self.total else 100.0
        logging.info(f"{self.what}: {self.done}/{self.total} ({percent:.0f}%), "
                     f"elapsed {_clock(elapsed)}, ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing done yet
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def progress(items: Iterable[T], total: Optional[int] = None, what: str = "items",
             interval_s: float = 10.0) -> Iterator[T]:
    """Yield ``items``, logging :class:`Progress` after each (``total``: ``len(items)`` if None)."""
    counter = Progress(len(items) if total is None else total, what, interval_s)
    for item in items:
        yield item
        counter.update()
