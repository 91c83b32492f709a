"""Domain randomization for sim-to-real: camera pose, lighting, colors, dynamics, drawn per episode.

`RandomizedEnv(make_env("lift", ...), RandomizationConfig())` behaves like the SimEnv it wraps; each
`reset(seed=...)` first restores the nominal MuJoCo model values, then draws new ones from a generator
seeded by that episode's seed, writes them into the model and only then resets robosuite, so the
first observation (images included) already shows the randomized scene. Seeding per episode makes a
resumed RL session (which passes the same per-episode seeds) see the same scenes again.

Everything is written into MuJoCo model fields in place. That works because SimEnv uses robosuite's
`hard_reset=False` (the model is never rebuilt, so values persist until we restore them) and is why
the nominal values are snapshotted once at wrap time. Textures themselves are not re-generated: a
texture upload needs the GL context, and a multiplicative tint of materials and colours (plus
lighting) gives the appearance shift that matters for sim-to-real at no render cost.

What is randomized (each a range; 0 switches it off):
  camera:   position jitter (m), rotation jitter (rad, random axis), vertical field of view (deg);
            the eye-in-hand camera moves too (mounting error). camera_info() reflects the jitter.
  lighting: diffuse/ambient/specular intensity scale, light position jitter, headlight scale.
  colors:   per-material and per-geom RGB tint (multiplicative), alpha kept.
  dynamics: friction scale per geom (sliding coefficient), mass + inertia scale of free bodies (the
            task objects), joint damping scale of the robot.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np


@dataclass
class RandomizationConfig:
    camera_pos_m: float = 0.01          # +- uniform per axis
    camera_rot_rad: float = 0.03        # rotation angle about a random axis, uniform in [0, x]
    camera_fovy_deg: float = 2.0        # +- uniform
    light_scale: float = 0.3            # intensities scaled by U(1 - x, 1 + x)
    light_pos_m: float = 0.3            # +- uniform per axis
    color_tint: float = 0.15            # RGB multiplied by U(1 - x, 1 + x) per channel
    friction_scale: float = 0.2         # sliding friction scaled by U(1 - x, 1 + x) per geom
    mass_scale: float = 0.2             # free-body mass and inertia scaled by U(1 - x, 1 + x)
    damping_scale: float = 0.2          # robot joint damping scaled by U(1 - x, 1 + x)

    PRESETS = {"default": {}, "light": {"camera_pos_m": 0.005, "camera_rot_rad": 0.015, "camera_fovy_deg": 1.0,
                                        "light_scale": 0.15, "light_pos_m": 0.15, "color_tint": 0.08,
                                        "friction_scale": 0.1, "mass_scale": 0.1, "damping_scale": 0.1},
               "strong": {"camera_pos_m": 0.03, "camera_rot_rad": 0.08, "camera_fovy_deg": 5.0, "light_scale": 0.5,
                          "light_pos_m": 0.5, "color_tint": 0.3, "friction_scale": 0.4, "mass_scale": 0.4,
                          "damping_scale": 0.4}}

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"RandomizationConfig.{f.name} must be a finite number >= 0, got {v!r}")
        for name in ("light_scale", "color_tint", "friction_scale", "mass_scale", "damping_scale"):
            if getattr(self, name) >= 1:
                raise ValueError(f"RandomizationConfig.{name} must be < 1 (a scale of 1 - x must stay > 0), "
                                 f"got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> "RandomizationConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"RandomizationConfig: unknown option(s) {sorted(unknown)}; "
                             f"valid: {[f.name for f in fields(cls)]}")
        return cls(**d)

    @classmethod
    def from_spec(cls, spec) -> "RandomizationConfig":
        """A config, a dict, a preset name, a JSON object string, or a path to a JSON file."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        if spec is True:
            return cls()
        text = str(spec).strip()
        if text in cls.PRESETS:
            return cls.from_dict(cls.PRESETS[text])
        if text.startswith("{"):
            try:
                return cls.from_dict(json.loads(text))
            except json.JSONDecodeError as exc:
                raise ValueError(f"randomize spec {text!r}: invalid JSON ({exc})") from exc
        path = Path(text)
        if path.is_file():
            return cls.from_dict(json.loads(path.read_text()))
        raise ValueError(f"randomize spec {text!r}: not a preset ({', '.join(cls.PRESETS)}), a JSON object "
                         "or an existing JSON file")

    def to_dict(self) -> dict:
        return asdict(self)


# Model fields restored before every draw (the nominal scene).
_FIELDS = ("cam_pos", "cam_quat", "cam_fovy", "light_pos", "light_diffuse", "light_ambient", "light_specular",
           "mat_rgba", "geom_rgba", "geom_friction", "body_mass", "body_inertia", "dof_damping")


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product, MuJoCo's wxyz order."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


class Randomizer:
    """Draws and applies one scene to a raw mujoco.MjModel (kept separate from the env wrapper so it
    can be unit-tested on any model)."""

    def __init__(self, model, cfg: RandomizationConfig):
        import mujoco

        self.m, self.cfg = model, cfg
        self.nominal = {f: np.array(getattr(model, f), copy=True) for f in _FIELDS}
        # Free bodies are the manipulated objects: their mass is uncertain in reality; the robot's is known.
        self.free_bodies = np.array([b for b in range(model.nbody) if model.body_jntnum[b] > 0
                                     and model.jnt_type[model.body_jntadr[b]] == mujoco.mjtJoint.mjJNT_FREE], int)
        self.damped_dofs = np.flatnonzero(self.nominal["dof_damping"] > 0)
        self.plain_geoms = np.flatnonzero(np.asarray(model.geom_matid) < 0)   # colour from geom_rgba
        self.last: dict = {}

    def restore(self) -> None:
        for f, v in self.nominal.items():
            getattr(self.m, f)[...] = v

    def apply(self, rng: np.random.Generator) -> dict:
        """Restore the nominal scene, then draw and write a new one. Returns a summary of the draw."""
        self.restore()
        c, m = self.cfg, self.m
        scale = lambda x, shape: rng.uniform(1 - x, 1 + x, shape)
        if m.ncam:
            m.cam_pos[...] += rng.uniform(-c.camera_pos_m, c.camera_pos_m, m.cam_pos.shape)
            for i in range(m.ncam):
                axis = rng.normal(size=3)
                axis /= np.linalg.norm(axis) + 1e-12
                angle = rng.uniform(0, c.camera_rot_rad)
                dq = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])
                q = _quat_mul(dq, m.cam_quat[i])
                m.cam_quat[i] = q / np.linalg.norm(q)
            m.cam_fovy[...] += rng.uniform(-c.camera_fovy_deg, c.camera_fovy_deg, m.cam_fovy.shape)
        if m.nlight:
            light = scale(c.light_scale, (m.nlight, 1))
            for f in ("light_diffuse", "light_ambient", "light_specular"):
                getattr(m, f)[...] = np.clip(getattr(m, f) * light, 0, 1)
            m.light_pos[...] += rng.uniform(-c.light_pos_m, c.light_pos_m, m.light_pos.shape)
        if m.nmat:
            m.mat_rgba[:, :3] = np.clip(m.mat_rgba[:, :3] * scale(c.color_tint, (m.nmat, 3)), 0, 1)
        if len(self.plain_geoms):
            g = self.plain_geoms
            m.geom_rgba[g, :3] = np.clip(m.geom_rgba[g, :3] * scale(c.color_tint, (len(g), 3)), 0, 1)
        m.geom_friction[:, 0] *= scale(c.friction_scale, m.ngeom)
        mass = scale(c.mass_scale, len(self.free_bodies))
        if len(self.free_bodies):
            m.body_mass[self.free_bodies] *= mass
            m.body_inertia[self.free_bodies] *= mass[:, None]   # same shape, denser material
        if len(self.damped_dofs):
            m.dof_damping[self.damped_dofs] *= scale(c.damping_scale, len(self.damped_dofs))
        self.last = {"object_mass_scale": mass.tolist(),
                     "light_diffuse": m.light_diffuse.tolist() if m.nlight else [],
                     "cam_pos_delta": (m.cam_pos - self.nominal["cam_pos"]).tolist()}
        return self.last


class RandomizedEnv:
    """A SimEnv whose every episode runs in a freshly randomized scene (see module doc)."""

    def __init__(self, env, cfg: RandomizationConfig | dict | str | None = None, seed: int | None = None):
        self.env = env
        self.cfg = RandomizationConfig.from_spec(cfg if cfg is not None else "default")
        self.randomizer = Randomizer(env.robosuite_env.sim.model._model, self.cfg)
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> dict:
        # The scene draw uses its own stream derived from the episode seed, so it neither shifts
        # robosuite's placement randomness nor depends on how many episodes ran before a resume.
        rng = np.random.default_rng([int(seed), 0x5EED]) if seed is not None else self._rng
        self._draw_scene(rng)
        return self.env.reset(seed=seed)

    def _draw_scene(self, rng) -> None:
        """Change the model for the next episode (a subclass may add fixed biases after the draw)."""
        self.randomizer.apply(rng)

    @property
    def randomization(self) -> dict:
        """The current episode's draw (for logging)."""
        return dict(self.randomizer.last)

    def step(self, action):
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()

    def __getattr__(self, name):      # obs_spec, camera_info, action_space, horizon, fps, ...
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self):
        return f"RandomizedEnv({self.env!r}, {self.cfg})"
