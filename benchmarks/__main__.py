"""``python -m benchmarks [NAME ...]``: run every benchmark module (or the named ones) in turn.

A benchmark module defines ``main(argv) -> int`` and prints its figures; this runner adds nothing else.
"""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    modules = pkgutil.iter_modules([str(Path(__file__).parent)])
    names = argv or sorted(m.name for m in modules if not m.name.startswith("_"))
    failed = []
    for name in names:
        print(f"== benchmarks.{name}", flush=True)
        if importlib.import_module(f"benchmarks.{name}").main([]) != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
