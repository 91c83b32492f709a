"""KitePolicy: instruction + RGB-D -> grounded keypoint -> 3-D point -> skill primitive -> action chunk.

One tick of act(obs):
  1. obs["instruction"] (str) is split into sub-instructions (language.py); a new instruction starts over.
  2. At the start of each sub-instruction: the grounding model turns (grounding-camera RGB, the
     sub-instruction's cached sentence embedding) into a heatmap; argmax + soft-argmax give the keypoint
     pixel; the robust depth around it, K and the camera pose give the base-frame point; the skill head
     (a linear classifier over the same embedding) picks the skill. Grounding runs once per
     sub-instruction, on the first image, as in KITE: later images show the arm over the object.
  3. The skill: policy_stack/skills/keypoint_skills reads the object's heading and height from the
     depth around the 3-D point and builds the Pick / Place primitive (the motion code the scripted
     experts use); SkillSequence steps it with the current robot state (one action per tick), retries an
     empty pick, hands the pick's grasp to the following place, and starts the next sub-instruction.
Without an instruction, or when no valid depth lies under the keypoint, it holds (zero motion, last
gripper command) and says why in `info["hold"]`.

Camera geometry: intrinsics from obs["<cam>_K"] when present (the ROS node fills it from camera_info),
else the config's `camera_K`; the camera pose in the base frame from the config's `camera_T_base_cam`
(a fixed, calibrated camera; the trainer copies it from the grounding data).

Text: embeddings of every instruction seen in training live in the buffer `instruction_embeddings`
(rows named by config.instruction_vocab, saved in model.safetensors), so a known instruction needs no
transformer at run time; an unknown one loads all-MiniLM-L6-v2 once and is embedded on the fly.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from policy_stack.normalize import ACTION_KEY, Normalizer
from policy_stack.nn.preprocess import validate_observation
from policy_stack.policies.base import Policy
from policy_stack.policies.common import DeviceTracking, resolve_device
from policy_stack.policies.kite.config import KiteConfig
from policy_stack.policies.kite.geometry import keypoint_to_base
from policy_stack.policies.kite.grounding import (GroundingEnsemble, GroundingUNet, decode_keypoint, heatmap_loss,
                                                  heatmap_probabilities, image_tensor)
from policy_stack.policies.kite.language import split_instruction
from policy_stack.policies.kite.text_encoder import EMBED_DIM, EmbeddingCache, normalize_instruction
from policy_stack.policies.registry import register_policy
from policy_stack.spaces import ActionSpace, FeatureSpec

class NoKeypoint(RuntimeError):
    """A sub-instruction could not be grounded to a 3-D point (no valid depth under the keypoint)."""


LOWDIM_DIMS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "robot0_joint_pos": 7}


def action_stats(action_space: ActionSpace) -> dict:
    """KITE predicts no raw actions, so its only normalization entry is the action box (checkpoints
    and the node read it like any policy's)."""
    return {ACTION_KEY: {"min": list(action_space.low), "max": list(action_space.high)}}


@register_policy("kite", KiteConfig)
class KitePolicy(DeviceTracking, nn.Module, Policy):
    backends = ("torch",)

    def __init__(self, config: KiteConfig, stats: dict | Normalizer | None, action_space: ActionSpace,
                 obs_spec: dict[str, FeatureSpec] | None = None):
        super().__init__()
        self.config = config
        self.action_space = action_space
        self.action_dim = action_space.dim
        stats = stats if stats is not None else action_stats(action_space)
        self.normalizer = stats if isinstance(stats, Normalizer) else Normalizer(stats, depth_max_m=config.depth_max_m)
        self.obs_spec = self._obs_spec(obs_spec)
        in_channels = 4 if config.depth_input else 3
        make_unet = lambda: GroundingUNet(in_channels, config.grounding_channels, EMBED_DIM, config.text_hidden,
                                          config.stem_stride)
        self.grounding = (make_unet() if config.grounding_ensemble == 1
                          else GroundingEnsemble([make_unet() for _ in range(config.grounding_ensemble)]))
        self.skill_head = nn.Linear(EMBED_DIM, len(config.skills))
        self.register_buffer("instruction_embeddings", torch.zeros(len(config.instruction_vocab), EMBED_DIM))
        self._cache: EmbeddingCache | None = None
        self.device_ = resolve_device(config.device)
        self.to(self.device_)
        self.eval()
        self._info: dict = {}
        # instruction -> [(skill or None, sub-instruction)]; None = the skill head decides. The default
        # splits on sequencing words; an env that knows its templates may install their parser (the
        # stand-in for KITE's language-model decomposition), e.g. `policy-stack eval` for multi_cube.
        self.instruction_parser = lambda text: [(None, part) for part in split_instruction(text)]
        # (sub_index, sub_instruction, obs) -> pixel (u, v) used instead of the grounding model; set only by
        # evaluations that measure the rest of the pipeline with ground-truth keypoints (the oracle baseline).
        self.keypoint_source = None
        self.reset()

    # ------------------------------------------------------------------ construction helpers
    def _obs_spec(self, obs_spec) -> dict[str, FeatureSpec]:
        cfg = self.config
        cam = cfg.grounding_camera
        spec = {k: FeatureSpec([LOWDIM_DIMS.get(k, 3)], "float32", "lowdim") for k in cfg.lowdim_keys}
        spec[f"{cam}_rgb"] = FeatureSpec([*cfg.image_shape, 3], "uint8", "rgb")
        spec[f"{cam}_depth"] = FeatureSpec(list(cfg.image_shape), "float32", "depth")
        if obs_spec is None:
            return spec
        missing = [k for k in spec if k not in obs_spec]
        if missing:
            raise ValueError(f"obs_spec lacks key(s) the kite policy needs: {missing}")
        return {k: obs_spec[k] if isinstance(obs_spec[k], FeatureSpec) else FeatureSpec(**obs_spec[k]) for k in spec}

    # ------------------------------------------------------------------ text embeddings
    @property
    def text_cache(self) -> EmbeddingCache:
        if self._cache is None:
            table = self.instruction_embeddings.detach().cpu()
            self._cache = EmbeddingCache({k: table[i] for i, k in enumerate(self.config.instruction_vocab)})
        return self._cache

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._cache = None      # rebuilt from the loaded buffer on first use
        return result

    def freeze_instruction_cache(self) -> None:
        """Copy every embedding computed so far into config.instruction_vocab + the buffer, so the next
        checkpoint carries them (call before save_checkpoint)."""
        cache = self.text_cache
        vocab = sorted(cache._table)
        self.config.instruction_vocab = vocab
        table = torch.stack([cache._table[k] for k in vocab]) if vocab else torch.zeros(0, EMBED_DIM)
        self.instruction_embeddings = table.to(self.device_)

    def skill_labels(self, tasks: list[str]) -> torch.Tensor:
        index = {s: i for i, s in enumerate(self.config.skills)}
        unknown = sorted(set(tasks) - set(index))
        if unknown:
            raise ValueError(f"task label(s) {unknown} not among the config's skills {self.config.skills}")
        return torch.tensor([index[t] for t in tasks], dtype=torch.long)

    # ------------------------------------------------------------------ grounding
    def grounding_logits(self, x: torch.Tensor, instructions: list[str],
                         emb: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) images + B instructions -> (B, H, W) heatmap logits. With compose_attributes, a
        description of several attribute words adds the logits of each word alone (a product of the
        spatial distributions: the keypoint must be on an object that has every attribute)."""
        if emb is None:
            emb = self.text_cache.get(instructions).to(self.device_)
        if self.config.compose_attributes and self.config.attribute_words and self.config.compose_weights:
            return self._weighted_composition(x, instructions, emb)
        logits = self.grounding(x, emb)
        if self.config.compose_attributes and self.config.attribute_words:
            from policy_stack.policies.kite.attribute_queries import attribute_variants

            words = set(self.config.attribute_words)
            pairs = [(i, v) for i, text in enumerate(instructions) for v in attribute_variants(text, words)]
            if pairs:       # one batched pass over every (image, single-attribute text) pair
                rows = torch.tensor([i for i, _ in pairs], device=x.device)
                nets = ([self.grounding] if self.config.grounding_ensemble == 1 else
                        [self.grounding.members[i] for i in (self.config.compose_members or
                                                              range(self.config.grounding_ensemble))])
                v_emb = self.text_cache.get([v for _, v in pairs]).to(self.device_)
                for net in nets:
                    logits = logits.index_add(0, rows, net(x[rows], v_emb))
        return logits

    def _weighted_composition(self, x: torch.Tensor, instructions: list[str], emb: torch.Tensor) -> torch.Tensor:
        """config.compose_weights: per network, w_full * logits(full text) + w_size * logits(size word
        alone) + w_colour * logits(colour word alone). A text without a description of two or more
        attribute words keeps the networks' plain full-text logits (summed over the networks)."""
        from policy_stack.policies.kite.attribute_queries import attribute_variants, description_span

        cfg = self.config
        words, sizes = set(cfg.attribute_words), set(cfg.size_words)
        nets = [self.grounding] if cfg.grounding_ensemble == 1 else list(self.grounding.members)
        full = [net(x, emb) for net in nets]
        logits = sum(full)
        pairs = []      # (row, 1 = size | 2 = colour, text)
        for i, text in enumerate(instructions):
            for v in attribute_variants(text, words):
                start, end = description_span(v, words)
                pairs.append((i, 1 if v[start:end] in sizes else 2, v))
        if not pairs:
            return logits
        composed = sorted({i for i, _, _ in pairs})
        rows = torch.tensor([i for i, _, _ in pairs], device=x.device)
        v_emb = self.text_cache.get([v for _, _, v in pairs]).to(self.device_)
        out = logits.clone()
        out[composed] = 0.0
        for net, net_full, weights in zip(nets, full, cfg.compose_weights):
            out[composed] += weights[0] * net_full[composed]
            scale = torch.tensor([weights[k] for _, k, _ in pairs], device=x.device, dtype=out.dtype)
            out = out.index_add(0, rows, net(x[rows], v_emb) * scale[:, None, None])
        return out

    @torch.no_grad()
    def ground(self, rgb: np.ndarray, depth: np.ndarray | None, instruction: str) -> dict:
        """One image + one (sub-)instruction -> {"uv": (2,), "heatmap": (H, W) float in [0, 1],
        "skill": str}."""
        emb = self.text_cache.get([instruction]).to(self.device_)
        rgb_t = torch.as_tensor(np.ascontiguousarray(rgb))[None]
        depth_t = torch.as_tensor(np.ascontiguousarray(depth, dtype=np.float32))[None] if self.config.depth_input else None
        x = image_tensor(rgb_t, depth_t, self.config.depth_max_m).to(self.device_)
        if tuple(x.shape[-2:]) != tuple(self.config.image_shape):
            raise ValueError(f"grounding image {tuple(x.shape[-2:])} differs from the trained size "
                             f"{tuple(self.config.image_shape)}")
        logits = self.grounding_logits(x, [instruction], emb)
        uv = decode_keypoint(logits, self.config.softargmax_window)[0].cpu().numpy()
        heat = heatmap_probabilities(logits, self.config.loss)[0].cpu().numpy()
        skill = self.config.skills[int(self.skill_head(emb).argmax(-1))]
        return {"uv": uv.astype(np.float64), "heatmap": heat, "skill": skill}

    def camera_K(self, obs: dict) -> np.ndarray:
        key = f"{self.config.grounding_camera}_K"
        if key in obs:
            return np.asarray(obs[key], np.float64).reshape(3, 3)
        if self.config.camera_K is None:
            raise ValueError(f"no camera intrinsics: the observation lacks {key!r} and the checkpoint has no camera_K")
        return np.asarray(self.config.camera_K, np.float64)

    def camera_pose(self) -> np.ndarray:
        if self.config.camera_T_base_cam is None:
            raise ValueError("no camera pose: the checkpoint has no camera_T_base_cam")
        return np.asarray(self.config.camera_T_base_cam, np.float64)

    # ------------------------------------------------------------------ acting
    def reset(self, seed: int | None = None) -> None:
        self._instruction: str | None = None
        self._subtasks: list[tuple] = []
        self._sequence = None      # policy_stack.skills.primitives.SkillSequence over the sub-instructions
        self._gripper = float(self.action_space.low[-1]) if self.action_space.discrete else 0.0
        self._debug: dict = {}
        self._info = {}
        self._groundings = 0       # sub-instructions grounded this episode (evaluations pair them with labels)

    def observe(self, obs: dict) -> None:
        """Executed steps of a chunk: the primitive re-plans from the newest state at the next act()."""

    def act(self, obs: dict) -> np.ndarray:
        from policy_stack.skills.primitives import SkillSequence

        t0 = time.perf_counter()
        validate_observation(obs, self.obs_spec, list(self.obs_spec))
        instruction = obs.get("instruction")
        if isinstance(instruction, np.ndarray):
            instruction = str(instruction.item()) if instruction.size == 1 else None
        if not isinstance(instruction, str) or not instruction.strip():
            return self._hold("no instruction", t0)
        instruction = normalize_instruction(instruction)
        if instruction != self._instruction:
            self._instruction, self._sequence = instruction, None
            try:
                self._subtasks = list(self.instruction_parser(instruction))
            except ValueError as exc:
                self._subtasks = []
                return self._hold(f"instruction not understood: {exc}", t0)
            if not self._subtasks:
                return self._hold("instruction has no steps", t0)
            self._sequence = SkillSequence(len(self._subtasks), self._plan_subtask)
        if self._sequence is None:
            return self._hold("instruction not understood", t0)
        if self._sequence.done:
            return self._hold("instruction done", t0)
        try:
            action = self._sequence.step(obs)
        except NoKeypoint as exc:       # retried at the next tick (SkillSequence plans the step again)
            return self._hold(str(exc), t0)
        return self._emit(action[None], t0)

    def _plan_subtask(self, index: int, obs: dict):
        """SkillSequence's planner: ground sub-instruction `index` in this observation, lift the keypoint
        to 3-D, measure the skill parameters, and return the primitive."""
        from policy_stack.skills.keypoint_skills import pick_at, place_at
        from policy_stack.skills.object_skills import pick_object_at, place_in_at

        # skill name -> primitive builder: cubes (pick, place), household objects and bins (pick_object,
        # place_in; pick_place_multi). SkillSequence hands a place what the pick before it holds.
        builders = {"pick": pick_at, "place": place_at, "pick_object": pick_object_at, "place_in": place_in_at}
        cam = self.config.grounding_camera
        skill, sub = self._subtasks[index]
        depth = np.asarray(obs[f"{cam}_depth"])
        depth = depth.astype(np.float32) / 1000.0 if depth.dtype == np.uint16 else depth.astype(np.float32)
        g = self.ground(obs[f"{cam}_rgb"], depth, sub)
        if self.keypoint_source is not None:
            g["uv"] = np.asarray(self.keypoint_source(index, sub, obs), np.float64)
        self._groundings += 1
        skill = skill or g["skill"]
        K, T = self.camera_K(obs), self.camera_pose()
        p = keypoint_to_base(g["uv"][0], g["uv"][1], depth, K, T, self.config.depth_window)
        self._debug = {"keypoint_px": g["uv"], "heatmap": g["heatmap"], "skill": skill, "sub_instruction": sub,
                       "sub_index": index}
        if p is None:
            raise NoKeypoint(f"no valid depth at keypoint ({g['uv'][0]:.1f}, {g['uv'][1]:.1f})")
        if skill not in builders:
            raise ValueError(f"skill {skill!r}: the kite policy runs {sorted(builders)}")
        self._debug.update(keypoint_base=p)
        return builders[skill](p, depth, K, T, obs["robot0_eef_quat"])

    def _emit(self, chunk: np.ndarray, t0: float) -> np.ndarray:
        chunk = np.asarray(chunk, np.float32).reshape(-1, self.action_dim)
        chunk = self.action_space.clip(chunk).astype(np.float32)
        self._gripper = float(chunk[-1, -1])
        self._info = self._tick_info(t0, hold="")
        return chunk

    def _hold(self, reason: str, t0: float) -> np.ndarray:
        chunk = np.zeros((self.config.n_action_steps, self.action_dim), np.float32)
        chunk[:, -1] = self._gripper
        self._info = self._tick_info(t0, hold=reason)
        return chunk

    def _tick_info(self, t0: float, hold: str) -> dict:
        d = self._debug
        return {"latency_ms": (time.perf_counter() - t0) * 1e3, "sampler": "kite", "steps": 0, "hold": hold,
                "groundings": self._groundings, "sub_index": d.get("sub_index", 0),
                "instruction": self._instruction or "", "sub_instruction": d.get("sub_instruction", ""),
                "skill": d.get("skill", ""),
                "keypoint_px": [float(x) for x in d["keypoint_px"]] if "keypoint_px" in d else None,
                "keypoint_base": [float(x) for x in d["keypoint_base"]] if "keypoint_base" in d else None}

    @property
    def info(self) -> dict:
        return dict(self._info)

    def debug_outputs(self) -> dict:
        """The last grounding: keypoint_base (3,) metres in the base frame, keypoint_px (2,) (u, v), and
        heatmap (H, W) uint8 (0-255, max-normalised), each only once there is one."""
        out = {}
        if "keypoint_base" in self._debug:
            out["keypoint_base"] = np.asarray(self._debug["keypoint_base"], np.float64)
        if "keypoint_px" in self._debug:
            out["keypoint_px"] = np.asarray(self._debug["keypoint_px"], np.float64)
            out["heatmap"] = np.clip(self._debug["heatmap"] * 255.0, 0, 255).astype(np.uint8)
        return out

    # ------------------------------------------------------------------ learning
    def sample(self, obs_batch, n: int) -> torch.Tensor:
        raise ValueError("kite policies do not sample action chunks (no RL fine-tuning: the skills are primitives)")

    def loss(self, batch: dict) -> torch.Tensor:
        """Grounding loss on {"rgb": uint8 (B,H,W,3), "depth": (B,H,W), "kp_px": (B,2), "instructions": [B]}."""
        depth = batch["depth"] if self.config.depth_input else None
        x = image_tensor(torch.as_tensor(batch["rgb"]), None if depth is None else torch.as_tensor(depth),
                         self.config.depth_max_m).to(self.device_)
        emb = self.text_cache.get(list(batch["instructions"])).to(self.device_)
        return heatmap_loss(self.grounding(x, emb), torch.as_tensor(batch["kp_px"]).float().to(self.device_),
                            self.config.sigma_px, self.config.loss)
