"""Replay for RL fine-tuning: offline demonstrations + online transitions, RLPD-style 50/50 sampling.

One entry = one macro-transition (docs/rl.md): the observation history (To, ...) at a decision, the
sampled chunk (Tp, A) in RAW units (what `policy.loss` takes), the discounted reward summed over the
k <= Ta executed steps, discount = gamma**k, terminal (true end, not a time limit), the next
observation history, the Monte-Carlo return (Cal-QL's lower bound), the episode id, `succ`, the
entry offset of the next decision in the same episode (0 = none), which the n-step option follows, and
`intervention` (1 = a human chose every executed action of the row, HIL-SERL style; docs/rl.md).

Persistence: arrays in safetensors + metadata in JSON, in a directory written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from policy_stack.file_modes import save_safetensors

from policy_stack.persist import resolve_dir, write_dir_atomic

SCALARS = {"reward": np.float32, "discount": np.float32, "terminal": np.float32, "mc_return": np.float32,
           "intervention": np.float32, "episode": np.int64, "succ": np.int64}
FORMAT_VERSION = 1


class TransitionStore:
    """Fixed-capacity ring of transitions; arrays are allocated on the first add (shapes from data)."""

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"TransitionStore: capacity must be > 0, got {capacity}")
        self.capacity = int(capacity)
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0
        self.ptr = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        n = len(batch["reward"])
        if not self.arrays:
            self.arrays = {k: np.zeros((self.capacity, *np.shape(v)[1:]), dtype=np.asarray(v).dtype) for k, v in batch.items()}
        if set(batch) != set(self.arrays):
            raise KeyError(f"TransitionStore: fields {sorted(batch)} differ from stored {sorted(self.arrays)}")
        idx = (self.ptr + np.arange(n)) % self.capacity
        for k, v in batch.items():
            v = np.asarray(v)
            if v.shape[1:] != self.arrays[k].shape[1:]:
                raise ValueError(f"TransitionStore: field {k!r} shape {v.shape[1:]} != stored {self.arrays[k].shape[1:]}")
            self.arrays[k][idx] = v
        self.ptr = int((self.ptr + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def get(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in self.arrays.items()}

    def nstep(self, idx: np.ndarray, n: int) -> dict[str, np.ndarray]:
        """Transitions at idx extended to up to n decisions by following `succ` inside an episode,
        stopping at a terminal, an episode end or an overwritten successor."""
        out = self.get(idx)
        if n <= 1:
            return out
        ret, disc, term = out["reward"].copy(), out["discount"].copy(), out["terminal"].copy()
        cur, alive = idx.copy(), (out["succ"] > 0) & (term == 0)
        nxt = {k: out[k].copy() for k in out if k.startswith("next_obs/")}
        for _ in range(n - 1):
            cand = (cur + np.maximum(self.arrays["succ"][cur], 0)) % self.capacity
            ok = alive & (self.arrays["episode"][cand] == self.arrays["episode"][cur])
            ok &= self._written_after(cur, cand)
            if not ok.any():
                break
            c = cand[ok]
            ret[ok] += disc[ok] * self.arrays["reward"][c]
            disc[ok] *= self.arrays["discount"][c]
            term[ok] = self.arrays["terminal"][c]
            for k in nxt:
                nxt[k][ok] = self.arrays[k][c]
            cur = np.where(ok, cand, cur)
            alive = ok & (self.arrays["succ"][cur] > 0) & (term == 0)
        out.update(reward=ret, discount=disc, terminal=term, **nxt)
        return out

    def _written_after(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # age 0 = oldest entry; a successor must be younger than its predecessor
        start = self.ptr if self.size == self.capacity else 0
        return ((b - start) % self.capacity > (a - start) % self.capacity) & ((b - start) % self.capacity < self.size)

    # persistence ------------------------------------------------------------------------------
    def state(self, prefix: str):
        # Save in age order (oldest first) so the file holds only `size` rows and reloads with ptr=size%cap.
        start = self.ptr if self.size == self.capacity else 0
        order = (start + np.arange(self.size)) % self.capacity
        arrays = {f"{prefix}/{k}": np.ascontiguousarray(v[order]) for k, v in self.arrays.items()}
        meta = {"capacity": self.capacity, "size": self.size,
                "fields": {k: [list(v.shape[1:]), str(v.dtype)] for k, v in self.arrays.items()}}
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], prefix: str, meta: dict) -> None:
        self.capacity, self.size, self.ptr = int(meta["capacity"]), 0, 0
        self.arrays = {}
        fields = dict(meta["fields"])
        if fields and "intervention" not in fields:
            # Replays saved before intervention flags existed: every row was the agent's own.
            fields["intervention"] = [[], "float32"]
            arrays = {**arrays, f"{prefix}/intervention": np.zeros(int(meta["size"]), np.float32)}
        if fields:
            self.arrays = {k: np.zeros((self.capacity, *shape), dtype=dtype) for k, (shape, dtype) in fields.items()}
            n = int(meta["size"])
            if n:
                self.add({k: arrays[f"{prefix}/{k}"] for k in fields})


class Replay:
    """Offline + online stores. sample() draws `offline_ratio` of the batch from offline data and the
    rest from online data (RLPD's symmetric sampling at 0.5); with one store empty it all comes from
    the other, so offline-only pre-training and demo-free sessions use the same code."""

    def __init__(self, offline_capacity: int = 1_000_000, online_capacity: int = 1_000_000,
                 offline_ratio: float = 0.5, n_step: int = 1):
        if not 0.0 <= offline_ratio <= 1.0:
            raise ValueError(f"Replay: offline_ratio must be in [0, 1], got {offline_ratio}")
        self.offline = TransitionStore(offline_capacity)
        self.online = TransitionStore(online_capacity)
        self.offline_ratio = float(offline_ratio)
        self.n_step = int(n_step)
        self.next_episode_id = 0

    def __len__(self):
        return self.offline.size + self.online.size

    def new_episode_id(self) -> int:
        self.next_episode_id += 1
        return self.next_episode_id - 1

    def add_offline(self, batch: dict[str, np.ndarray]) -> None:
        self.offline.add(batch)

    def add_online(self, batch: dict[str, np.ndarray]) -> None:
        self.online.add(batch)

    def split(self, batch_size: int, sources: str = "both") -> tuple[int, int]:
        if sources == "offline" or self.online.size == 0:
            return batch_size, 0
        if sources == "online" or self.offline.size == 0:
            return 0, batch_size
        n_off = int(round(batch_size * self.offline_ratio))
        return n_off, batch_size - n_off

    def sample(self, batch_size: int, rng: np.random.Generator, sources: str = "both") -> dict:
        """Batch of numpy arrays: obs/next_obs dicts (B, To, ...), action (B, Tp, A), action_is_pad,
        reward, discount, terminal, mc_return, is_online (B,)."""
        if len(self) == 0:
            raise RuntimeError("Replay.sample: replay is empty")
        n_off, n_on = self.split(batch_size, sources)
        parts = []
        for store, n in ((self.offline, n_off), (self.online, n_on)):
            if n:
                if store.size == 0:
                    raise RuntimeError(f"Replay.sample: asked for {n} {sources} transitions but that store is empty")
                parts.append(store.nstep(rng.integers(0, store.size, size=n), self.n_step))
        flat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        out: dict = {"obs": {}, "next_obs": {}}
        for k, v in flat.items():
            head, _, key = k.partition("/")
            if head in ("obs", "next_obs"):
                out[head][key] = v
            else:
                out[k] = v
        out["is_online"] = np.concatenate([np.zeros(n_off, np.float32), np.ones(n_on, np.float32)])
        return out

    # persistence ------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        def write(tmp: Path):
            arrays, meta = {}, {"version": FORMAT_VERSION, "offline_ratio": self.offline_ratio,
                                "n_step": self.n_step, "next_episode_id": self.next_episode_id}
            for name, store in (("offline", self.offline), ("online", self.online)):
                a, m = store.state(name)
                arrays.update(a)
                meta[name] = m
            save_safetensors(arrays, tmp / "replay.safetensors")
            (tmp / "replay.json").write_text(json.dumps(meta, indent=1))
        write_dir_atomic(Path(folder), write)

    @classmethod
    def load(cls, folder: Path) -> "Replay":
        folder = resolve_dir(Path(folder))
        meta = json.loads((folder / "replay.json").read_text())
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"Replay.load: {folder}/replay.json has version {meta.get('version')}, expected {FORMAT_VERSION}")
        arrays = load_file(str(folder / "replay.safetensors"))
        r = cls(meta["offline"]["capacity"], meta["online"]["capacity"], meta["offline_ratio"], meta["n_step"])
        r.offline.restore(arrays, "offline", meta["offline"])
        r.online.restore(arrays, "online", meta["online"])
        r.next_episode_id = int(meta["next_episode_id"])
        return r


# building transitions ---------------------------------------------------------------------------
def mc_returns(rewards: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """G_i = r_i + discount_i * G_{i+1}, G after the last decision = 0."""
    g, out = 0.0, np.zeros(len(rewards), np.float32)
    for i in range(len(rewards) - 1, -1, -1):
        g = float(rewards[i]) + float(discounts[i]) * g
        out[i] = g
    return out


def history(obs: dict[str, np.ndarray], t: int, To: int) -> dict[str, np.ndarray]:
    """Observation history ending at step t, first frame repeated before the episode start."""
    idx = np.clip(np.arange(t - To + 1, t + 1), 0, None)
    return {k: v[idx] for k, v in obs.items()}


def _window(actions: np.ndarray, t: int, Tp: int, exec_start: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk for a decision at step t in the training-window convention (data/windows.py): steps
    t - exec_start ... t - exec_start + Tp - 1, edge steps repeated and marked as padding."""
    steps = np.arange(Tp) + t - exec_start
    T = len(actions)
    return actions[np.clip(steps, 0, T - 1)].astype(np.float32), (steps < 0) | (steps >= T)


def transitions_from_episode(obs: dict[str, np.ndarray], actions: np.ndarray, rewards: np.ndarray,
                             terminal: bool, To: int, Tp: int, Ta: int, gamma: float, episode: int,
                             stride: int = 1, exec_start: int | None = None,
                             interventions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Macro-transitions from one recorded episode (per-step arrays: obs k -> (T or T+1, ...),
    actions (T, A), rewards (T,)). A decision starts every `stride` steps (1 = every step, the most
    data from few demos). Chunks follow the imitation windows (exec_start defaults to To - 1, the
    executed steps are actions[t : t + Ta]); non-terminal endings whose next observation is not
    recorded are dropped (nothing to bootstrap from). `interventions` (T,) per-step flags (a dataset
    recorded with `record --policy`): a row is flagged only when a human chose ALL its executed steps."""
    T = len(actions)
    flags = np.zeros(T, bool) if interventions is None else np.asarray(interventions, bool).reshape(-1)
    if len(flags) != T:
        raise ValueError(f"transitions_from_episode: {len(flags)} intervention flags for {T} actions")
    s = To - 1 if exec_start is None else exec_start
    n_obs = len(next(iter(obs.values())))
    if n_obs not in (T, T + 1):
        raise ValueError(f"transitions_from_episode: {n_obs} observations for {T} actions (need T or T+1)")
    disc_step = gamma ** np.arange(Ta)
    g_step = mc_returns(rewards, np.full(T, gamma, np.float32))
    rows = []
    for t in range(0, T, stride):
        k = min(Ta, T - t)
        end = t + k
        is_term = terminal and end == T
        if not is_term and end >= n_obs:
            continue
        chunk, pad = _window(actions, t, Tp, s)
        rows.append(dict(
            obs=history(obs, t, To), next_obs=history(obs, min(end, n_obs - 1), To), action=chunk,
            action_is_pad=pad, reward=float((disc_step[:k] * rewards[t:end]).sum()), discount=gamma ** k,
            terminal=float(is_term), mc_return=float(g_step[t]), intervention=float(flags[t:end].all())))
    if not rows:
        return {}
    succ = Ta // stride if Ta % stride == 0 else 0
    batch = _stack(rows, episode)
    # successor exists when the decision Ta steps later was also kept
    batch["succ"] = np.array([succ if succ and i + succ < len(rows) else 0 for i in range(len(rows))], np.int64)
    return batch


class EpisodeRecorder:
    """Accumulates one online episode; finish() returns replay rows with MC returns.

    Stored chunks are rebuilt from the actions actually EXECUTED over the episode, in the imitation
    window convention, exactly as demonstrations are: training the base policy on online rows is
    then imitation of executed behaviour, and the critic's executed slice is what the robot did.

    A row cut short (k < Ta executed steps: the episode ended, or the env cut the decision where a
    human intervention began or ended) keeps only its own k actions in the executed slice: the steps
    from exec_start + k on repeat its last action and are marked padding. Otherwise Q(s, a) would read
    actions of the NEXT decision (possibly the other actor's) as part of this transition."""

    def __init__(self, Tp: int, exec_start: int, Ta: int | None = None):
        self.Tp, self.exec_start, self.Ta = Tp, exec_start, Ta
        self.rows: list[dict] = []
        self.actions: list[np.ndarray] = []

    def add(self, obs_hist, executed, step_rewards, next_obs_hist, terminal: bool, gamma: float,
            intervention: bool = False):
        r = np.asarray(step_rewards, np.float64)
        self.rows.append(dict(obs=obs_hist, next_obs=next_obs_hist, t=len(self.actions), k=len(r),
                              reward=float((gamma ** np.arange(len(r)) * r).sum()), discount=gamma ** len(r),
                              terminal=float(terminal), mc_return=0.0, intervention=float(bool(intervention))))
        self.actions.extend(np.asarray(executed, np.float32)[: len(r)])

    def finish(self, episode: int) -> dict[str, np.ndarray]:
        if not self.rows:
            return {}
        acts = np.stack(self.actions)
        g = mc_returns(np.array([r["reward"] for r in self.rows]), np.array([r["discount"] for r in self.rows]))
        for row, gi in zip(self.rows, g):
            row["mc_return"] = float(gi)
            row["action"], row["action_is_pad"] = _window(acts, row["t"], self.Tp, self.exec_start)
            if self.Ta is not None and row["k"] < self.Ta:
                cut = self.exec_start + row["k"]
                row["action"][cut:] = acts[row["t"] + row["k"] - 1]
                row["action_is_pad"][cut:] = True
        batch = _stack(self.rows, episode)
        batch["succ"] = np.array([1] * (len(self.rows) - 1) + [0], np.int64)
        return batch


def intervention_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows of one episode's batch that a human chose (HIL-SERL's demo-buffer copy), with `succ`
    re-linked inside the subset: a row keeps a successor only when the next decision was also copied."""
    idx = np.flatnonzero(np.asarray(batch.get("intervention", ()), np.float32) > 0)
    if len(idx) == 0:
        return {}
    out = {k: np.asarray(v)[idx] for k, v in batch.items()}
    linked = (batch["succ"][idx] == 1) & np.isin(idx + 1, idx)
    out["succ"] = linked.astype(np.int64)
    return out


def _stack(rows: list[dict], episode: int) -> dict[str, np.ndarray]:
    out = {}
    for head in ("obs", "next_obs"):
        for k in rows[0][head]:
            out[f"{head}/{k}"] = np.stack([r[head][k] for r in rows])
    out["action"] = np.stack([r["action"] for r in rows]).astype(np.float32)
    out["action_is_pad"] = np.stack([r["action_is_pad"] for r in rows]).astype(bool)
    for k, dt in SCALARS.items():
        if k in ("episode", "succ"):
            continue
        out[k] = np.array([r[k] for r in rows], dtype=dt)
    out["episode"] = np.full(len(rows), episode, np.int64)
    return out


def batch_to_torch(batch: dict, device="cpu") -> dict:
    out = {}
    for k, v in batch.items():
        out[k] = {kk: torch.as_tensor(vv, device=device) for kk, vv in v.items()} if isinstance(v, dict) else torch.as_tensor(v, device=device)
    return out
