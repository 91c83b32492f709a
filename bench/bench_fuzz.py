"""Fuzzing benchmark: seeded random damage against the CLI; counts cases tried, survived and data lost.

    python -m bench.bench_fuzz [--cases 1000] [--seed 0] [--targets dataset] [--out runs/bench/fuzz.json]
    python -m bench.bench_fuzz --replay 17          # re-run case 17 of --seed, printing what happened

A target builds a small valid artefact once, then each case copies it, applies 1-3 random mutations
and runs CLI commands on it. Case k of seed s always draws the same mutations (numpy generator seeded
with [s, k]), so any failure is replayable. A case *survives* when every command exits 0 or 2 with no
uncaught exception or traceback, and a failing command says why in one line per problem, each line
prefixed `policy-stack`. *Data lost* counts committed, complete episodes whose files no mutation
touched but which changed or disappeared after the commands ran (`dataset repair` is the one that
deletes files).

Targets (the hook for more generators): subclass FuzzTarget, decorate with @register, and give it a
name; `--targets` picks them. `dataset` is here; `checkpoint` (damaged checkpoints vs `policy-stack
checkpoint info`) and `node` (malformed observations at 20 Hz against a running inference node) are in
bench/fuzz_targets.py. A target may have finish() -> dict, run after its last case.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

TARGETS: dict[str, type] = {}


def register(cls):
    TARGETS[cls.name] = cls
    return cls


def damage_file(rng, path: Path, kind: str, label) -> str:
    """truncate | flip_bytes | delete (anything else) one file, drawing from rng; returns what was done."""
    data = path.read_bytes()
    if kind == "truncate":
        keep = int(rng.integers(0, max(len(data), 1)))
        path.write_bytes(data[:keep])
        return f"truncate {label} to {keep} of {len(data)} bytes"
    if kind == "flip_bytes":
        if not data:
            return f"flip_bytes {label}: empty"
        buf = bytearray(data)
        n = int(rng.integers(1, 9))
        for pos in rng.integers(0, len(buf), n):
            buf[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(buf))
        return f"flip {n} bytes in {label}"
    path.unlink()
    return f"delete {label}"


class CaseTimeout(Exception):
    pass


class FuzzTarget:
    """One kind of artefact under attack. prepare() once; then per case mutate() and run()."""
    name = ""

    def prepare(self, workdir: Path) -> None:
        raise NotImplementedError

    def run_case(self, rng: np.random.Generator, case_dir: Path, timeout_s: float) -> dict:
        """-> {"mutations": [...], "commands": [{"argv", "rc", "ok", "why"}], "survived", "lost"}"""
        raise NotImplementedError


def run_cli(argv: list[str], timeout_s: float) -> dict:
    """policy-stack ARGV in this process; returns rc, captured output and whether it met the contract."""
    from policy_stack.cli import main

    out, err = io.StringIO(), io.StringIO()

    def on_alarm(signum, frame):
        raise CaseTimeout(f"no answer within {timeout_s} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    rc, crash = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(argv)
    except CaseTimeout as exc:
        crash = f"hang: {exc}"
    except BaseException as exc:   # noqa: BLE001 - an escaped exception is exactly what we count
        crash = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    stderr = err.getvalue()
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    why = crash
    if why is None and rc not in (0, 2):
        why = f"exit code {rc}"
    if why is None and "Traceback" in stderr:
        why = "traceback on stderr"
    if why is None and rc == 2:
        if not lines:
            why = "exit 2 with nothing on stderr"
        elif any(not ln.startswith("policy-stack") for ln in lines):
            why = "error is not one line per problem"
        elif argv[1] != "verify" and len(lines) != 1:
            why = f"{len(lines)} lines of error"
    return {"argv": argv[:2], "rc": rc, "ok": why is None, "why": why,
            "stderr": stderr[-600:] if why else (lines[-1][:200] if lines else "")}


# ------------------------------------------------------------------------------------------ datasets

@register
class DatasetTarget(FuzzTarget):
    """A 3-episode LeRobot v3.0 dataset (one camera) vs `dataset info`, `verify`, `repair`."""
    name = "dataset"
    MUTATIONS = ("truncate", "flip_bytes", "edit_json", "delete_file", "edit_row")
    COMMANDS = ("info", "verify", "repair")      # repair last: it is the one that changes files
    JSON_VALUES = (-1, 0, 1, 2, 3, 5, 10**12, -10**12, 0.5, float("nan"), float("inf"), True, None, "", "x" * 1000,
                   "../../../etc/passwd", "/etc/passwd", "{chunk_index.__class__}", "{chunk_index:>999999999}",
                   "data/chunk-{chunk_index:03d}/file-{file_index:02d}.parquet", [], [1, 2], {}, {"a": 1})

    def prepare(self, workdir: Path) -> None:
        from bench.fuzz_data import make_dataset

        self.template = make_dataset(workdir / "template")

    def _files(self, root: Path) -> list[Path]:
        return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".writer.lock")

    def _mutate(self, rng, root: Path) -> str:
        kind = self.MUTATIONS[rng.integers(len(self.MUTATIONS))]
        files = self._files(root)
        if kind == "edit_row":
            return self._edit_row(rng, root)
        if kind == "edit_json":
            path = root / ("meta/info.json" if rng.random() < 0.85 else "meta/stats.json")
            if not path.exists():
                return "edit_json: file already gone"
            try:
                obj = json.loads(path.read_text())
            except (ValueError, RecursionError):
                return "edit_json: file not JSON any more"
            keys, node = [], obj
            while isinstance(node, dict) and node and (not keys or rng.random() < 0.4):
                key = sorted(node)[rng.integers(len(node))]
                keys.append(key)
                if not isinstance(node[key], dict):
                    break
                node = node[key]
            if not keys:
                return "edit_json: nothing to edit"
            value = self.JSON_VALUES[rng.integers(len(self.JSON_VALUES))]
            deep = rng.random() < 0.05                              # 5000 nested lists
            if deep:
                value = "__deep__"
            parent = obj
            for k in keys[:-1]:
                parent = parent[k]
            if rng.random() < 0.1:
                del parent[keys[-1]]
                desc = f"edit_json {path.name}: delete {'/'.join(keys)}"
            else:
                parent[keys[-1]] = value
                desc = f"edit_json {path.name}: {'/'.join(keys)} = {json.dumps(value)[:60]}"
            text = json.dumps(obj)
            if deep:
                text = text.replace('"__deep__"', "[" * 5000 + "]" * 5000)
                desc = desc.replace('"__deep__"', "5000 nested lists")
            path.write_text(text)
            return desc
        if not files:
            return f"{kind}: no files left"
        path = files[rng.integers(len(files))]
        return damage_file(rng, path, kind, path.relative_to(root))

    def _edit_row(self, rng, root: Path) -> str:
        """Set one cell of the episodes table (meta/episodes) to a hostile value of the column's type."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = root / "meta/episodes/chunk-000/file-000.parquet"
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception:   # noqa: BLE001 - already damaged by an earlier mutation
            return "edit_row: table unreadable"
        if not rows:
            return "edit_row: no rows"
        i = int(rng.integers(len(rows)))
        col = sorted(rows[i])[rng.integers(len(rows[i]))]
        old = rows[i][col]
        if isinstance(old, bool):
            new = not old
        elif isinstance(old, int):
            new = [-1, 0, 1, 2, 3, 999, 2**62, old + 1, old - 1][rng.integers(9)]
        elif isinstance(old, float):
            new = [-1.0, 0.0, 1e30, float("nan"), old * 2][rng.integers(5)]
        elif isinstance(old, list) and old and isinstance(old[0], str):
            new = [["another task"], [], ["x" * 10000]][rng.integers(3)]
        else:
            return f"edit_row: column {col} left alone"
        rows[i][col] = new
        try:
            pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)
        except (pa.ArrowException, OverflowError, TypeError):
            return f"edit_row: {col} = {str(new)[:30]} not representable"
        return f"edit_row: episode {i} {col} = {str(new)[:40]}"

    def _episode_files(self, root: Path) -> dict[int, dict[str, bytes]]:
        """Episode k -> {relative path: bytes} of its data parquet and MP4 (template layout: file k)."""
        out: dict[int, dict[str, bytes]] = {}
        for p in self._files(root):
            rel = str(p.relative_to(root))
            if rel.startswith(("data/", "videos/")) and p.stem.startswith("file-"):
                out.setdefault(int(p.stem.split("-")[1]), {})[rel] = p.read_bytes()
        return out

    def run_case(self, rng, case_dir: Path, timeout_s: float) -> dict:
        root = case_dir / "ds"
        shutil.copytree(self.template, root, ignore=shutil.ignore_patterns(".writer.lock"))
        original = self._episode_files(root)
        mutations = [self._mutate(rng, root) for _ in range(int(rng.integers(1, 4)))]
        after = self._episode_files(root)
        intact = {k: files for k, files in original.items() if after.get(k) == files}
        extra = {"verify": ["--no-progress"]}
        commands = [run_cli(["dataset", verb, str(root), *extra.get(verb, [])], timeout_s) for verb in self.COMMANDS]
        final = self._episode_files(root)
        lost = sorted(k for k, files in intact.items() if final.get(k) != files)
        return {"mutations": mutations, "commands": commands, "survived": all(c["ok"] for c in commands),
                "lost": lost}


# ------------------------------------------------------------------------------------------ driver

def run(targets: list[str], cases: int, seed: int, timeout_s: float, replay: int | None = None,
        progress: bool = True) -> dict:
    from tqdm import tqdm

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_fuzz_") as tmp:
        for name in targets:
            target = TARGETS[name]()
            target.prepare(Path(tmp) / name)
            tried = survived = lost_episodes = cases_with_loss = 0
            failures, by_mutation = [], {}
            todo = [replay] if replay is not None else range(cases)
            t0 = time.perf_counter()
            for k in tqdm(todo, desc=f"fuzz {name}", unit="case", disable=not progress):
                case_dir = Path(tmp) / name / f"case_{k}"
                case_dir.mkdir(parents=True)
                res = target.run_case(np.random.default_rng([seed, k]), case_dir, timeout_s)
                shutil.rmtree(case_dir, ignore_errors=True)
                tried += 1
                survived += res["survived"]
                lost_episodes += len(res["lost"])
                cases_with_loss += bool(res["lost"])
                for m in res["mutations"]:
                    kind = m.split()[0].rstrip(":")
                    stats = by_mutation.setdefault(kind, {"applied": 0, "in_failed_cases": 0})
                    stats["applied"] += 1
                    stats["in_failed_cases"] += not res["survived"] or bool(res["lost"])
                if replay is not None:
                    print(json.dumps(res, indent=1))
                if (not res["survived"] or res["lost"]) and len(failures) < 50:
                    failures.append({"case": k, **res, "commands": [c for c in res["commands"] if not c["ok"]]})
            finish = getattr(target, "finish", None)
            extra = finish() if finish else {}
            results[name] = {**extra, "cases_tried": tried, "cases_survived": survived, "cases_failed": tried - survived,
                             "episodes_lost": lost_episodes, "cases_with_data_loss": cases_with_loss,
                             "commands_per_case": list(getattr(target, "COMMANDS", [])), "by_mutation": by_mutation,
                             "wall_s": round(time.perf_counter() - t0, 1), "failures": failures}
    return results


def main(argv=None) -> int:
    # The checkpoint and node targets register into bench.bench_fuzz's registry, which is another module
    # object than this one when run as `python -m bench.bench_fuzz`: take them over.
    import bench.bench_fuzz as registry
    import bench.fuzz_targets  # noqa: F401
    TARGETS.update({k: v for k, v in registry.TARGETS.items() if k not in TARGETS})
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", nargs="+", default=["dataset"], choices=sorted(TARGETS))
    p.add_argument("--cases", type=int, default=1000, help="cases per target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=120.0, help="per command; a command past it counts as a hang")
    p.add_argument("--replay", type=int, default=None, help="run only case K of --seed and print it")
    p.add_argument("--out", default="runs/bench/fuzz.json")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--dataset-commands", default=",".join(DatasetTarget.COMMANDS),
                   help="dataset verbs run per case, in order (e.g. info,repair against a build without verify)")
    args = p.parse_args(argv)
    DatasetTarget.COMMANDS = tuple(c for c in args.dataset_commands.split(",") if c)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = run(args.targets, args.cases, args.seed, args.timeout_s, args.replay, not args.no_progress)
    report = {"bench": "fuzz", "seed": args.seed, "cases_per_target": args.cases, "targets": results,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "command": "python -m bench.bench_fuzz " + " ".join(argv if argv is not None else os.sys.argv[1:])}
    if args.replay is None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        os.replace(tmp, out)
        for name, r in results.items():
            print(f"{name}: {r['cases_tried']} cases, {r['cases_survived']} survived, {r['cases_failed']} failed, "
                  f"{r['episodes_lost']} committed episodes lost ({r['wall_s']} s) -> {out}")
    failed = any(r["cases_failed"] or r["episodes_lost"] or r.get("chunks_answering_damaged_observations")
                 or r.get("node_exit_code") not in (None, 0) for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
