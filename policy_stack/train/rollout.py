"""Rollout evaluation without importing sim/: the caller passes an env factory in.

The core package must not import robosuite (docs/CONVENTIONS.md), so `policy-stack eval` and the
trainer's periodic evaluation hand in two picklable callables:
    env_factory(seed) -> env with reset(seed)->obs, step(a)->(obs, r, done, info{"success"})
    policy_factory()  -> a Policy (already configured: sampler, steps, backend)
Episodes can be spread over worker processes (spawn: MuJoCo/GL contexts and torch threads do not
survive fork well); each worker builds its own env and policy once and runs a slice of the seeds.

Episodes run through the one episode loop (policy_stack/episode.py). Latency is measured around
`policy.act(obs)`, i.e. per plan, which is what a robot waits for.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    env_steps: int
    ticks: int
    latency_ms: list[float] = field(default_factory=list)   # one per policy.act call
    policy_steps: list[int] = field(default_factory=list)   # denoising / optimisation steps per tick
    video: str | None = None


def run_episode(env, policy, seed: int, max_steps: int | None = None, video_path: str | None = None,
                video_key: str = "agentview_rgb", fps: int = 20) -> EpisodeResult:
    """One evaluation episode through the one episode loop (policy_stack/episode.py: act every plan,
    observe() every executed step, stop on success, env done or max_steps), optionally filmed."""
    from policy_stack.episode import run_episode as run_one

    writer = _VideoWriter(video_path, fps) if video_path else None
    try:
        rec = run_one(env, policy, seed, max_steps, record_obs=False,
                      on_obs=(lambda obs: writer.add(obs, video_key)) if writer else None)
    finally:
        video = writer.close() if writer else None
    return EpisodeResult(seed=int(seed), success=rec["episode_success"], env_steps=rec["length"], ticks=rec["ticks"],
                         latency_ms=rec["latency_ms"], policy_steps=rec["policy_steps"], video=video)


def summarize(results: list[EpisodeResult]) -> dict:
    """The fields `policy-stack eval --json` prints (and the trainer logs)."""
    lat = np.concatenate([np.asarray(r.latency_ms, np.float64) for r in results]) if results else np.zeros(0)
    steps = np.concatenate([np.asarray(r.policy_steps, np.float64) for r in results]) if results else np.zeros(0)
    n = len(results)
    ok = sum(r.success for r in results)

    def pct(q):
        return float(np.percentile(lat, q)) if lat.size else float("nan")

    return {
        "success_rate": ok / n if n else 0.0,
        "successes": ok,
        "episodes": n,
        "latency_ms_mean": float(lat.mean()) if lat.size else float("nan"),
        "latency_ms_p50": pct(50),
        "latency_ms_p99": pct(99),
        "steps_per_tick": float(steps.mean()) if steps.size else 0.0,
        "ticks": int(lat.size),
        "env_steps_mean": float(np.mean([r.env_steps for r in results])) if n else 0.0,
        "seeds": [r.seed for r in results],
        "videos": [r.video for r in results if r.video],
    }


def evaluate(env_factory: Callable, policy_factory: Callable, seeds: list[int], workers: int = 1,
             max_steps: int | None = None, video_dir: str | None = None, progress: bool = True,
             policy=None) -> list[EpisodeResult]:
    """Run one episode per seed. workers > 1 spreads seeds over spawned processes.

    `policy`: an already-built policy to use in-process (the trainer passes its EMA policy so it does
    not re-load a checkpoint); ignored when workers > 1.
    """
    seeds = [int(s) for s in seeds]
    workers = max(1, min(int(workers), len(seeds) or 1))
    if video_dir:
        Path(video_dir).mkdir(parents=True, exist_ok=True)
    if workers == 1:
        return _run_slice(env_factory, policy_factory, seeds, max_steps, video_dir, progress, policy)
    slices = [seeds[i::workers] for i in range(workers)]
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: list[EpisodeResult] = []
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(threads,)) as pool:
        futures = [pool.submit(_run_slice, env_factory, policy_factory, s, max_steps, video_dir, False, None)
                   for s in slices]
        bar = _bar(len(seeds), progress)
        for fut in cf.as_completed(futures):
            part = fut.result()
            results.extend(part)
            if bar:
                bar.update(len(part))
                bar.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
        if bar:
            bar.close()
    order = {s: i for i, s in enumerate(seeds)}
    return sorted(results, key=lambda r: order[r.seed])


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _run_slice(env_factory, policy_factory, seeds, max_steps, video_dir, progress, policy=None):
    env = env_factory(seeds[0] if seeds else None)
    policy = policy if policy is not None else policy_factory()
    out = []
    bar = _bar(len(seeds), progress)
    try:
        for seed in seeds:
            video = str(Path(video_dir) / f"episode_seed{seed}.mp4") if video_dir else None
            res = run_episode(env, policy, seed, max_steps=max_steps, video_path=video,
                              fps=int(getattr(env, "fps", 20) or 20))
            out.append(res)
            if bar:
                bar.update(1)
                bar.set_postfix(success=f"{sum(r.success for r in out)}/{len(out)}")
    finally:
        if bar:
            bar.close()
        close = getattr(env, "close", None)
        if close:
            close()
    return out


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="eval episodes", unit="ep", leave=False, dynamic_ncols=True)


class _VideoWriter:
    """MP4 of one camera stream (policy_stack.data.video.Mp4Writer); frames are the env's upright RGB."""

    def __init__(self, path: str, fps: int):
        from policy_stack.data.video import Mp4Writer
        self._mp4 = Mp4Writer(path, fps)

    def add(self, obs: dict, key: str) -> None:
        frame = obs.get(key)
        if frame is None:
            raise ValueError(f"--video: observation has no {key!r}; the env must render that camera "
                             f"(keys: {sorted(obs)})")
        self._mp4.write(frame)

    def close(self) -> str | None:
        return self._mp4.close()


def results_to_json(results: list[EpisodeResult]) -> list[dict]:
    return [asdict(r) for r in results]
