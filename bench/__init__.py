"""Benchmarks, run from the repository root as `python -m bench.<name>` (not installed with the package).

Every benchmark writes its JSON under runs/bench/ (git-ignored) unless told otherwise, so a run never
overwrites the committed evidence in bench/results/; copy a result there by hand when a document
cites it."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "runs" / "bench"


def emit(result, out: str = "") -> None:
    """Print a result as JSON, and write it to `out` (atomically) when given: the one way a small bench
    script reports."""
    import json

    from policy_stack.persist import write_json_atomic
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out), result, indent=1)
    print(json.dumps(result, indent=1), flush=True)
