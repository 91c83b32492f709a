"""`make bench`: every benchmark in turn, each writing JSON under bench/results/.

Benchmarks run on demand, never in `make test`: they take minutes and their numbers depend on the
machine (and on whatever else it is doing; each result records the load average).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

BENCHES = [
    ("sim", ["-m", "bench.bench_sim", "--json", "--episodes", "50"], "sim.json"),
    ("collect", ["-m", "bench.bench_collect"], None),
    ("latency", ["-m", "bench.bench_latency"], None),
    ("ros", ["-m", "bench.bench_ros", "--out", str(RESULTS / "ros.json")], None),
    ("fuzz", ["-m", "bench.bench_fuzz", "--no-progress"], None),     # JSON: runs/bench/fuzz.json
]


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, args, stdout_file in BENCHES:
        print(f"== bench {name}", flush=True)
        if stdout_file:
            with open(RESULTS / stdout_file, "w") as f:
                rc = subprocess.run([sys.executable, *args], stdout=f).returncode
        else:
            rc = subprocess.run([sys.executable, *args]).returncode
        if rc != 0:
            failed.append(name)
    print(f"results in {RESULTS}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
