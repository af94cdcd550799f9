"""``python -m bench``: run every benchmark in this directory, one process each, and print their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    modules = sorted(
        p.stem
        for p in HERE.glob("*.py")
        if p.stem not in ("__init__", "__main__") and not p.stem.startswith("_")
    )
    failures = 0
    for module in modules:
        if wanted and module not in wanted:
            continue
        print(f"\n=== bench.{module} ===", flush=True)
        result = subprocess.run([sys.executable, "-m", f"bench.{module}"], cwd=HERE.parent)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
