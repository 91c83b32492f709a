"""The online fine-tuning session loop, environment-agnostic (sim env or ROS-topic env).

Env protocol (duck-typed; docs/rl.md):
  reset() -> obs (or reset(seed=...) if the env accepts a seed; the session passes one per episode
             so a resumed run replays the same episode sequence)
  step(action (A,)) -> (obs, reward, done, info)       # one control step, or, if env.accepts_chunks:
  step(chunk (Ta, A)) -> (obs, reward, done, info)      # info may carry "rewards" (per step),
                                                        # "observations" (per step) and "steps"
  info["success"] (bool) marks success; info["truncated"] marks a time-limit end (bootstrapped).
  What was EXECUTED may differ from what the agent sent (a human intervention, a hold, the executing
  side's timing): info["executed_actions"] (k, A) (chunk envs) or info["executed_action"] (A,) (step
  envs) replace the agent's actions in the replay, and info["interventions"] (k,) / info["intervention"]
  flag the steps a human chose. An env must end a decision where an intervention begins or ends (the
  row is then cut short, docs/rl.md); a decision with mixed flags is refused, never stored mislabelled.

Checkpoints are taken at episode boundaries (neither a robot nor a simulator can be snapshotted
mid-episode) once `checkpoint_every_env_steps` have passed since the last one. Each holds EVERYTHING
needed to continue identically: agent networks + optimizers + counters, replay, RNG states (python,
numpy global, the session's numpy generator, torch CPU and the agent's CUDA device), session counters
and history.
"""
from __future__ import annotations

import inspect
import json
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from policy_stack import persist
from policy_stack.policies.base import Policy
from policy_stack.rl.best_of_n import BestOfNAgent
from policy_stack.rl.expo import ExpoAgent
from policy_stack.rl.parl import ParlAgent
from policy_stack.rl.chunk_io import ChunkIO
from policy_stack.rl.replay import EpisodeRecorder, Replay, intervention_rows
from policy_stack.rng import capture_rng, restore_rng, seed_everything
from policy_stack.rl.sac import SacAgent
from policy_stack.rl.state_io import load_state, save_state

ALGOS = {"expo": ExpoAgent, "pa-rl": ParlAgent, "sac": SacAgent, "best_of_n": BestOfNAgent}


@dataclass
class SessionConfig:
    algo: str = "expo"
    agent: dict = field(default_factory=dict)    # overrides of the algorithm's config dataclass
    total_env_steps: int = 20_000
    max_episode_steps: int = 400
    gamma: float = 0.99                          # per control step; a chunk of k steps discounts gamma^k
    utd: int = 1                                 # critic updates per decision (docs/rl.md: CPU default)
    update_when: str = "episode_end"             # "episode_end" (real-time safe) | "decision"
    warmup_env_steps: int = 0                    # online steps before the first update
    critic_pretrain_steps: int = 0               # offline Cal-QL/TD critic steps before going online
    replay_capacity: int = 1_000_000
    interventions_to_offline: bool = True        # HIL-SERL: human-chosen rows also go to the offline (demo) store
    offline_ratio: float = 0.5
    n_step: int = 1
    reward_scale: float = 1.0
    reward_bias: float = 0.0
    checkpoint_every_env_steps: int = 2_000
    checkpoint_every_pretrain_steps: int = 1_000
    keep_checkpoints: int = 2
    success_window: int = 20                     # episodes in the rolling success rate
    seed: int = 0
    tensorboard: bool = True
    progress: bool = True
    obs_horizon: int | None = None               # None: read from the policy
    pred_horizon: int | None = None
    action_horizon: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "SessionConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"SessionConfig: unknown option(s) {sorted(unknown)}")
        return cls(**d)


def make_agent(cfg: SessionConfig, policy: Policy, io: ChunkIO, **kw):
    if cfg.algo not in ALGOS:
        raise ValueError(f"unknown algo {cfg.algo!r}; choose from {sorted(ALGOS)}")
    cls = ALGOS[cfg.algo]
    return cls(policy, cls.config_cls.from_dict(cfg.agent), io=io, **kw)


class Session:
    """State of one fine-tuning run; `run_session` is the one-call entry point."""

    def __init__(self, cfg: SessionConfig, env_factory: Callable, policy: Policy, offline_replay: Replay | None,
                 out_dir: Path, agent_kwargs: dict | None = None):
        if cfg.update_when not in ("episode_end", "decision"):
            raise ValueError(f"SessionConfig.update_when must be 'episode_end' or 'decision', got {cfg.update_when!r}")
        self.cfg, self.out = cfg, Path(out_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.env_factory, self.policy = env_factory, policy
        seed_everything(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.io = ChunkIO(policy, cfg.obs_horizon, cfg.pred_horizon, cfg.action_horizon)
        self.agent = make_agent(cfg, policy, self.io, **(agent_kwargs or {}))
        # The offline store also receives intervention rows (interventions_to_offline), so it is sized like
        # the online one even without demos (arrays are allocated on the first add, untouched pages cost nothing).
        self.replay = offline_replay or Replay(cfg.replay_capacity, cfg.replay_capacity, cfg.offline_ratio, cfg.n_step)
        self.replay.offline_ratio, self.replay.n_step = cfg.offline_ratio, cfg.n_step
        self.counters = {"env_steps": 0, "decisions": 0, "episodes": 0, "updates": 0, "pretrain_steps": 0,
                         "last_ckpt_env_steps": 0, "wall_s": 0.0, "intervention_steps": 0}
        self.history: list[list] = []      # [env_steps at episode end, success, return, length]
        self.timing = {"act_s": 0.0, "acts": 0, "update_s": 0.0}
        self.resumed_from: str | None = None

    # checkpoints ------------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        name = f"ckpt_{self.counters['pretrain_steps']:08d}_{self.counters['env_steps']:010d}"

        def write(tmp: Path):
            save_state(self.agent.state_dict(), tmp, "agent")
            save_state(capture_rng(self.agent.device, self.rng), tmp, "rng")
            self.replay.save(tmp / "replay")
            (tmp / "session.json").write_text(json.dumps({
                "config": asdict(self.cfg), "counters": self.counters, "history": self.history,
                "timing": self.timing}, indent=1))
        self.counters["last_ckpt_env_steps"] = self.counters["env_steps"]
        persist.write_dir_atomic(self.ckpt_root / name, write)
        return persist.publish_snapshot(self.ckpt_root, name, self.cfg.keep_checkpoints)

    def latest(self) -> Path | None:
        return persist.latest_snapshot_dir(self.ckpt_root)

    def restore(self, path: Path) -> None:
        # Read everything before changing anything, so a damaged checkpoint leaves the session as it was
        # and the next-older one can be tried (restore_newest).
        agent_state, rng = load_state(path, "agent"), load_state(path, "rng")
        replay = Replay.load(path / "replay")
        meta = json.loads((path / "session.json").read_text())
        self.agent.load_state_dict(agent_state)
        self.replay = replay
        self.counters.update(meta["counters"])
        self.history = meta["history"]
        self.timing.update(meta["timing"])
        restore_rng(rng, self.agent.device, self.rng)   # last: nothing after this may draw
        self.resumed_from = str(path)

    def restore_newest(self, newest: Path) -> None:
        """Restore `newest` or, if it does not load (truncated or corrupt file), the next-older checkpoint
        kept beside it, saying so on stderr. Raises ValueError naming each failure when none loads."""
        older = sorted((p for p in self.ckpt_root.glob("ckpt_*")
                        if p.is_dir() and p.name < newest.name and not p.name.endswith((".tmp", ".old"))), reverse=True)
        failures = []
        for path in [newest, *older]:
            try:
                self.restore(path)
            except Exception as exc:   # noqa: BLE001 - safetensors, JSON, shapes: any means "unusable"
                reason = " ".join(str(exc).split())[:200]
                failures.append(f"{path.name} ({type(exc).__name__}: {reason})")
                print(f"resume: checkpoint {path} does not load ({type(exc).__name__}: {reason}); "
                      f"trying the previous one", file=sys.stderr)
                continue
            if failures:
                print(f"resume: fell back to {path.name}; the progress after it is lost and will be redone",
                      file=sys.stderr)
            return
        raise ValueError(f"resume: no checkpoint in {self.ckpt_root} loads: {'; '.join(failures)}")

    # the loop ---------------------------------------------------------------------------------
    def _reset(self, env):
        seed = int(self.rng.integers(2**31 - 1))
        params = inspect.signature(env.reset).parameters
        return env.reset(seed=seed) if "seed" in params else env.reset()

    def play_episode(self, env, log) -> dict:
        """One training episode of the AGENT (not a Policy: it decides from the observation history and
        may edit or re-rank the base policy's chunks), recorded into replay as macro-transitions.
        Evaluation of a policy goes through policy_stack/episode.py instead."""
        cfg, io = self.cfg, self.io
        obs = self._reset(env)
        self.policy.reset()
        hist = deque([obs] * io.To, maxlen=io.To)
        keys = self._obs_keys(obs)
        stack = lambda: {k: np.stack([o[k] for o in hist]) for k in keys}
        rec, steps, success, ret, done = EpisodeRecorder(io.Tp, io.exec_start, io.Ta), 0, False, 0.0, False
        s = io.exec_start
        chunk_env = bool(getattr(env, "accepts_chunks", False))
        low, high = np.asarray(self.policy.action_space.low, np.float32), np.asarray(self.policy.action_space.high, np.float32)
        while not done and steps < cfg.max_episode_steps:
            obs_hist = stack()
            t0 = time.perf_counter()
            chunk = self.agent.act(obs_hist)
            self.timing["act_s"] += time.perf_counter() - t0
            self.timing["acts"] += 1
            n_exec = min(io.Ta, cfg.max_episode_steps - steps)
            executed = np.clip(chunk[s:s + n_exec], low, high)
            rewards, truncated = [], False
            if chunk_env:
                obs, r, done, info = env.step(executed)
                rewards = list(info.get("rewards", [r]))
                for o in info.get("observations", [obs]):
                    hist.append(o)
                success |= bool(info.get("success", False))
                truncated = bool(info.get("truncated", False))
                k = int(info.get("steps", len(rewards)))
                ran = info.get("executed_actions")
                flags = list(info.get("interventions", [False] * k))
            else:
                ran, flags = [], []
                for a in executed:
                    obs, r, done, info = env.step(a)
                    hist.append(obs)
                    rewards.append(r)
                    ran.append(info.get("executed_action", a))
                    flags.append(bool(info.get("intervention", False)))
                    success |= bool(info.get("success", False))
                    truncated = bool(info.get("truncated", False))
                    if done:
                        break
                k = len(rewards)
            if ran is not None:
                executed = np.asarray(ran, np.float32).reshape(-1, executed.shape[-1])
            if len(executed) < k or len(flags) < k or len(set(map(bool, flags[:k]))) > 1:
                raise ValueError(f"env step returned {len(executed)} executed actions and intervention flags "
                                 f"{[int(bool(f)) for f in flags]} for {k} steps: one decision must be all the "
                                 "agent's or all a human's (cut it where an intervention begins or ends)")
            intervened = bool(flags[0]) if k else False
            self.counters["intervention_steps"] = self.counters.get("intervention_steps", 0) + (k if intervened else 0)
            rewards = [float(r) * cfg.reward_scale + cfg.reward_bias for r in rewards]
            steps += k
            ret += sum(rewards)
            self.counters["env_steps"] += k
            self.counters["decisions"] += 1
            rec.add(obs_hist, executed, rewards, stack(), terminal=bool(done) and not truncated, gamma=cfg.gamma,
                    intervention=intervened)
            if cfg.update_when == "decision":
                self._updates(1, log)
            log.update(k)
        batch = rec.finish(self.replay.new_episode_id())
        if batch:
            self.replay.add_online(batch)
            human = intervention_rows(batch) if cfg.interventions_to_offline else {}
            if human:
                self.replay.add_offline(human)
        self.counters["episodes"] += 1
        self.history.append([self.counters["env_steps"], bool(success), ret, steps])
        if cfg.update_when == "episode_end":
            self._updates(len(rec.rows), log)
        return {"success": success, "return": ret, "length": steps}

    def _obs_keys(self, obs) -> list[str]:
        """Raw keys the replay keeps: the policy's obs_spec (what preprocess, sample and loss need)."""
        missing = [k for k in self.policy.obs_spec if k not in obs]
        if missing:
            raise KeyError(f"env observation lacks key(s) {missing} the policy needs; it has {sorted(obs)}")
        return list(self.policy.obs_spec)

    def _updates(self, n: int, log) -> None:
        if self.counters["env_steps"] < self.cfg.warmup_env_steps or len(self.replay) == 0:
            return
        t0 = time.perf_counter()
        for _ in range(n):
            metrics = self.agent.update(self.replay, self.rng, self.cfg.utd)
            self.counters["updates"] += 1
            log.scalars("train", metrics, self.counters["env_steps"])
        self.timing["update_s"] += time.perf_counter() - t0

    def pretrain(self, log) -> None:
        cfg = self.cfg
        while self.counters["pretrain_steps"] < cfg.critic_pretrain_steps:
            m = self.agent.pretrain_critic(self.replay, self.rng)
            self.counters["pretrain_steps"] += 1
            if self.counters["pretrain_steps"] % 50 == 0:
                log.scalars("pretrain", m, self.counters["pretrain_steps"])
            if (self.counters["pretrain_steps"] % cfg.checkpoint_every_pretrain_steps == 0
                    or self.counters["pretrain_steps"] == cfg.critic_pretrain_steps):
                self.checkpoint()

    def run(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        log = _Log(self.out, cfg, self.counters["env_steps"])
        t_start, wall0 = time.perf_counter(), self.counters["wall_s"]
        env = self.env_factory()
        try:
            if self.counters["pretrain_steps"] < cfg.critic_pretrain_steps:
                if self.replay.offline.size == 0:
                    raise ValueError("critic_pretrain_steps > 0 but the offline replay is empty")
                self.pretrain(log)
            while self.counters["env_steps"] < cfg.total_env_steps:
                ep = self.play_episode(env, log)
                log.episode(ep, self.counters, self._rate())
                self.counters["wall_s"] = wall0 + time.perf_counter() - t_start
                due = self.counters["env_steps"] - self.counters["last_ckpt_env_steps"] >= cfg.checkpoint_every_env_steps
                if due or self.counters["env_steps"] >= cfg.total_env_steps:
                    self.checkpoint()
        finally:
            log.close()
            if hasattr(env, "close"):
                env.close()
        return self.finish()

    def _rate(self) -> float:
        recent = self.history[-self.cfg.success_window:]
        return float(np.mean([h[1] for h in recent])) if recent else 0.0

    def finish(self) -> dict:
        succ = [h[1] for h in self.history]
        summary = {
            "algo": self.cfg.algo, **{k: self.counters[k] for k in ("env_steps", "decisions", "episodes", "updates", "pretrain_steps")},
            "wall_s": round(self.counters["wall_s"], 3),
            "success_rate_all": float(np.mean(succ)) if succ else None,
            f"success_rate_last_{self.cfg.success_window}": self._rate() if succ else None,
            "act_ms_mean": 1e3 * self.timing["act_s"] / max(self.timing["acts"], 1),
            "update_s_total": round(self.timing["update_s"], 3),
            "replay": {"offline": self.replay.offline.size, "online": self.replay.online.size},
            "intervention_steps": self.counters.get("intervention_steps", 0),
            "resumed_from": self.resumed_from,
            "curve": [[h[0], bool(h[1])] for h in self.history],
            "plot": str(self.out / "success_vs_env_steps.png"),
        }
        plot_success(self.history, self.out / "success_vs_env_steps.png", self.cfg.success_window, self.cfg.algo)
        persist.write_json_atomic(self.out / "summary.json", summary, indent=1)
        return summary


def plot_success(history: list, path: Path, window: int, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    if history:
        x = np.array([h[0] for h in history])
        s = np.array([float(h[1]) for h in history])
        rolling = np.array([s[max(0, i - window + 1): i + 1].mean() for i in range(len(s))])
        ax.scatter(x, s, s=6, alpha=0.3, label="episode success")
        ax.plot(x, rolling, label=f"success rate (last {window} episodes)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("success")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"online fine-tuning: {title}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class _Log:
    """tqdm bar + TensorBoard, both optional. TensorBoard purges events after the resume step so a
    resumed run does not draw the lost tail twice."""

    def __init__(self, out: Path, cfg: SessionConfig, start_step: int):
        self.bar = self.tb = None
        if cfg.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=cfg.total_env_steps, initial=start_step, unit="step", desc=cfg.algo, dynamic_ncols=True)
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step or None)
            except ImportError:
                self.tb = None

    def update(self, k: int) -> None:
        if self.bar:
            self.bar.update(k)

    def scalars(self, group: str, metrics: dict, step: int) -> None:
        if self.tb:
            for k, v in metrics.items():
                self.tb.add_scalar(f"{group}/{k}", v, step)

    def episode(self, ep: dict, counters: dict, rate: float) -> None:
        if self.bar:
            self.bar.set_postfix(ep=counters["episodes"], success=f"{rate:.2f}", upd=counters["updates"])
        self.scalars("episode", {"success": float(ep["success"]), "return": ep["return"], "length": ep["length"],
                                 "success_rate": rate}, counters["env_steps"])

    def close(self):
        if self.bar:
            self.bar.close()
        if self.tb:
            self.tb.close()


def run_session(config: SessionConfig | dict, env_factory: Callable, policy: Policy,
                offline_replay: Replay | None, out_dir, resume: bool = False, **agent_kwargs) -> dict:
    """Run (or resume) a fine-tuning session; returns the summary dict also written to
    out_dir/summary.json. With resume=True the latest checkpoint in out_dir restores everything
    (policy weights included) and `offline_replay` is ignored (the checkpoint holds the replay)."""
    cfg = config if isinstance(config, SessionConfig) else SessionConfig.from_dict(dict(config))
    s = Session(cfg, env_factory, policy, offline_replay, Path(out_dir), agent_kwargs)
    latest = s.latest()
    if resume and latest is not None:
        s.restore_newest(latest)
    elif latest is not None:
        raise FileExistsError(f"{out_dir} already holds checkpoints ({latest.name}); pass resume=True or use a new out_dir")
    return s.run()
