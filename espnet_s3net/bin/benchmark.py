"""Run one named benchmark and print its result as one JSON line.

Usage: ``python -m espnet_s3net.bin.benchmark NAME [benchmark options]``.
Each benchmark lives in ``espnet_s3net/benchmarks/<NAME>.py`` and defines
``main(argv: list[str]) -> dict``.
"""

import importlib
import json
import pkgutil
import sys
from typing import List

import espnet_s3net.benchmarks as benchmarks_pkg


def available() -> List[str]:
    """Names of the benchmarks shipped with the package."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks_pkg.__path__) if not m.name.startswith("_"))


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("available benchmarks: " + ", ".join(names))
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in names:
        sys.exit(f"unknown benchmark {name!r}; available: {', '.join(names)}")
    module = importlib.import_module(f"espnet_s3net.benchmarks.{name}")
    result = module.main(rest)
    print(json.dumps({"benchmark": name, **result}, sort_keys=False))


if __name__ == "__main__":
    main()
