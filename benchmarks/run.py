"""`make bench`: every benchmark, each figure against a baseline measured in the same run."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SUITES = [
    "bench_providers",
    "bench_langchain",
    "bench_langchain_wire",
    "bench_llamaindex",
    "bench_redis",
]


def main() -> None:
    """Run the core benchmark, then every suite that returns named ratios."""
    import bench_core

    bench_core.main()
    for name in SUITES:
        if not (Path(__file__).parent / f"{name}.py").exists():
            continue
        module = importlib.import_module(name)
        print(f"\n{name.removeprefix('bench_')}:")
        for label, value in module.run():
            print(f"  {label:70} {value:8.3f}")


if __name__ == "__main__":
    main()
