"""KiteConfig: every knob of the KITE family (grounding model, keypoint lifting, skills, training).

KITE (Sundaresan et al., CoRL 2023) grounds an instruction to a keypoint in one RGB-D image, lifts it
to 3-D and runs a keypoint-conditioned skill. Here the grounding model is a from-scratch U-Net with
a frozen all-MiniLM-L6-v2 sentence embedding applied by FiLM; the skills are the parameterized
primitives of policy_stack/skills.

Training defaults were chosen for 2 shared CPU cores (docs/kite.md): a 4-level U-Net of about 0.2 M
parameters at 128x128, Adam(W) 1e-3 (KITE's 1e-4 is for a pretrained CLIP backbone at batch 1; a
from-scratch net at batch 32 trains faster at 1e-3), Gaussian sigma 2 px at 128x128 (KITE: 6 px at
480x480, i.e. 1.6 px at this scale).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from policy_stack.policies.config import PolicyConfig
from policy_stack.policies.kite.grounding import LOSSES


@dataclass
class KiteConfig(PolicyConfig):
    # ---- observations: the grounding camera's RGB-D plus the robot state the skills need ----
    lowdim_keys: list[str] = field(default_factory=lambda: ["robot0_eef_pos", "robot0_eef_quat",
                                                            "robot0_gripper_qpos"])
    derived_features: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=lambda: ["grounding"])   # [grounding camera]
    use_depth: bool = True                      # depth is needed to lift the keypoint to 3-D
    image_shape: tuple[int, int] = (128, 128)
    crop_shape: tuple[int, int] | None = None   # the grounding model sees the whole image
    depth_max_m: float = 2.0

    # ---- horizons: one observation, one action (the primitives are closed loop, one step at a time) ----
    n_obs_steps: int = 1
    horizon: int = 1
    n_action_steps: int = 1

    # ---- grounding model ----
    grounding_channels: tuple[int, ...] = (8, 16, 32, 64)
    text_hidden: int = 128
    stem_stride: int = 2             # the U-Net runs at image_shape / stem_stride (1 or 2)
    depth_input: bool = False        # feed depth to the network as a 4th channel (it is always used for 3-D)
    loss: str = "softmax_ce"         # softmax_ce | bce (chosen by measurement: docs/kite.md)
    sigma_px: float = 2.0            # Gaussian target width at image_shape
    softargmax_window: int = 2       # refinement window half-width (px); 0 = plain argmax
    depth_window: int = 2            # robust depth: median over (2w+1)^2 pixels around the keypoint
    # Compose a description of several attributes ("small blue cube") as a product over its words:
    # the heatmap logits of the full text plus those of the text with each attribute alone ("small cube",
    # "blue cube"). attribute_words: the attribute vocabulary of the training rows (filled by training).
    compose_attributes: bool = False
    attribute_words: list[str] = field(default_factory=list)
    # An ensemble of grounding networks whose logits are summed (1 = one network). compose_members: the
    # members whose logits get the single-attribute composition (empty = every member).
    grounding_ensemble: int = 1
    compose_members: list[int] = field(default_factory=list)
    # Weighted composition, one [w_full, w_size, w_colour] per grounding network (empty = the plain sum
    # above: [1, 1, 1] for the composed members, [1, 0, 0] for the others). The network's logits for the
    # full text, the size word alone and the colour word alone are summed with these weights (a weighted
    # product of the three distributions). size_words: the attribute words that name a size (the other
    # attribute words name a colour); filled from the training rows' labels like attribute_words.
    compose_weights: list[list[float]] = field(default_factory=list)
    size_words: list[str] = field(default_factory=list)

    # ---- skills: the instruction's verb -> primitive (classes learned from the data's task labels) ----
    skills: list[str] = field(default_factory=lambda: ["pick", "place"])

    # ---- filled in by training (stored in the checkpoint) ----
    instruction_vocab: list[str] = field(default_factory=list)   # rows of the instruction_embeddings buffer
    camera_K: list | None = None             # 3x3 intrinsics of the grounding camera (obs <cam>_K overrides)
    camera_T_base_cam: list | None = None    # 4x4 pose of the grounding camera in the robot base frame

    # ---- training (AdamW via optimizer_preset; batches of grounding samples) ----
    lr: float = 1e-3
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_warmup_steps: int = 100
    grad_clip: float = 1.0
    augment_shift_px: int = 6        # random image translation in training (labels shifted alike)
    augment_color: float = 0.1       # brightness/contrast jitter amplitude
    # Gaussian noise on the sentence embedding in training, as a share of its (unit) norm: neighbouring
    # wordings of one instruction should ground alike (0 = off).
    augment_text_noise: float = 0.0
    # Random zoom in training by a factor in [1/augment_zoom, augment_zoom] (1 = off): a cube's pixel size
    # then no longer identifies its size class (train_grounding.random_zoom).
    augment_zoom: float = 1.0

    # Fields added after KITE checkpoints were shipped: a checkpoint without them loads with the defaults,
    # which keep its old behaviour (no zoom, the unweighted composition).
    LATER_FIELDS = frozenset({"augment_zoom", "compose_weights", "size_words"})

    SIZE_LIMITS = {**PolicyConfig.SIZE_LIMITS, "grounding_channels": 1024, "text_hidden": 4096,
                   "softargmax_window": 32, "depth_window": 32}

    def __post_init__(self):
        self.grounding_channels = tuple(self.grounding_channels)
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ValueError(f"KiteConfig.loss {self.loss!r} not in {LOSSES}")
        if len(self.cameras) != 1:
            raise ValueError(f"KiteConfig.cameras must name exactly one grounding camera, got {self.cameras}")
        if not self.use_depth:
            raise ValueError("KiteConfig.use_depth must be true: the keypoint is lifted to 3-D with depth")
        if not self.sigma_px > 0:
            raise ValueError(f"KiteConfig.sigma_px must be > 0, got {self.sigma_px}")
        if not self.skills:
            raise ValueError("KiteConfig.skills must name at least one skill")
        for name, shape in (("camera_K", (3, 3)), ("camera_T_base_cam", (4, 4))):
            value = getattr(self, name)
            if value is not None:
                import numpy as np
                arr = np.asarray(value, dtype=np.float64)
                if arr.shape != shape or not np.all(np.isfinite(arr)):
                    raise ValueError(f"KiteConfig.{name} must be a finite {shape[0]}x{shape[1]} matrix")
                setattr(self, name, arr.tolist())
        if not 1 <= self.grounding_ensemble <= 8:
            raise ValueError(f"KiteConfig.grounding_ensemble must be 1..8, got {self.grounding_ensemble}")
        if any(not 0 <= i < self.grounding_ensemble for i in self.compose_members):
            raise ValueError(f"KiteConfig.compose_members {self.compose_members} must index the "
                             f"{self.grounding_ensemble} grounding network(s)")
        if not 1.0 <= self.augment_zoom <= 4.0:
            raise ValueError(f"KiteConfig.augment_zoom must be in [1, 4], got {self.augment_zoom}")
        if self.compose_weights:
            import math
            if len(self.compose_weights) != self.grounding_ensemble or any(
                    len(w) != 3 or not all(math.isfinite(float(x)) for x in w) for w in self.compose_weights):
                raise ValueError(f"KiteConfig.compose_weights must hold one finite [w_full, w_size, w_colour] per "
                                 f"grounding network ({self.grounding_ensemble}), got {self.compose_weights}")
            if not self.size_words:
                raise ValueError("KiteConfig.compose_weights needs size_words (which attribute words are sizes)")
            self.compose_weights = [[float(x) for x in w] for w in self.compose_weights]
        if self.stem_stride not in (1, 2):
            raise ValueError(f"KiteConfig.stem_stride must be 1 or 2, got {self.stem_stride}")
        factor = self.stem_stride * 2 ** (len(self.grounding_channels) - 1)
        if any(s % factor for s in self.image_shape):
            raise ValueError(f"KiteConfig.image_shape {self.image_shape} must be divisible by {factor}")

    @property
    def grounding_camera(self) -> str:
        return self.cameras[0]
