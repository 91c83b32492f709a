"""`make bench`: every benchmark in turn, each writing JSON under runs/bench/ (git-ignored).

Committed evidence in bench/results/ is never overwritten; copy a result there when a document cites it.

Benchmarks run on demand, never in `make test`: they take minutes and their numbers depend on the
machine (and on whatever else it is doing; each result records the load average).
"""
from __future__ import annotations

import subprocess
import sys

from bench import RUNS as RESULTS
from policy_stack.persist import write_text_atomic

BENCHES = [
    ("sim", ["-m", "bench.bench_sim", "--json", "--episodes", "50"], "sim.json"),
    ("collect", ["-m", "bench.bench_collect", "--out", str(RESULTS / "collect.json")], None),
    ("latency", ["-m", "bench.bench_latency", "--out", str(RESULTS / "latency.json")], None),
    ("ros", ["-m", "bench.bench_ros", "--out", str(RESULTS / "ros.json")], None),
    ("fuzz", ["-m", "bench.bench_fuzz", "--no-progress"], None),     # JSON: runs/bench/fuzz.json
    ("camera", ["-m", "bench.bench_camera", "--out", str(RESULTS / "camera.json")], None),
    ("adapters", ["-m", "bench.bench_adapters", "--out", str(RESULTS / "adapters.json")], None),
    ("real_path", ["-m", "bench.bench_real_path", "--rows", "chunk,servo,jtc", "-n", "20",
                   "--out", str(RESULTS / "real_path.json")], None),
    ("recorder", ["-m", "bench.bench_recorder", "--duration", "30", "--out", str(RESULTS / "recorder.json")], None),
]


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, args, stdout_file in BENCHES:
        print(f"== bench {name}", flush=True)
        if stdout_file:
            proc = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True)
            rc = proc.returncode
            write_text_atomic(RESULTS / stdout_file, proc.stdout)
        else:
            rc = subprocess.run([sys.executable, *args]).returncode
        if rc != 0:
            failed.append(name)
    print(f"results in {RESULTS}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
