"""Benchmarks, run from the repository root as `python -m bench.<name>` (not installed with the package).

Every benchmark writes its JSON under runs/bench/ (git-ignored) unless told otherwise, so a run never
overwrites the committed evidence in bench/results/; copy a result there by hand when a document
cites it."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "runs" / "bench"
