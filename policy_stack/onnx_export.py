"""ONNX export of a DiffusionPolicy's networks and an ONNX Runtime backend for act()/sample().

Two graphs go to `<dir>`:
  denoiser.onnx     (sample (B,Tp,A) f32, timestep (B,) i64, global_cond (B,C) f32) -> eps (B,Tp,A)
  obs_encoder.onnx  normalized observation histories, one input per key (names in onnx_meta.json)
                    -> global_cond (B,C); eval behaviour (center crop) is baked in
The sampling loop (DDPM / DDIM / RTI), preprocessing and post-processing stay in Python and are the
same code as the torch backend: OnnxDiffusionRunner only replaces the two network calls, so
`policy.set_backend("onnx")` changes where the FLOPs run, not what is computed.

torch.onnx.export(dynamo=False, opset 17): the dynamo exporter needs onnxscript, which is not installed
(docs/background.md).
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from policy_stack.nn.obs_encoder import PositionalObservationEncoder

DENOISER_FILE = "denoiser.onnx"
ENCODER_FILE = "obs_encoder.onnx"
META_FILE = "onnx_meta.json"
OPSET = 17


class OnnxParityError(RuntimeError):
    pass


def _example_inputs(policy, batch: int = 1, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Normalized observation inputs with the shapes the encoder expects (values in range)."""
    c = policy.config
    enc = policy.obs_encoder
    out = {}
    rgb_keys = {f"{cam}_rgb" for cam in enc.cameras}
    depth_keys = {f"{cam}_depth" for cam in enc.cameras}
    for key in enc.input_keys:
        if key in rgb_keys:
            out[key] = torch.rand((batch, c.n_obs_steps, 3, *c.image_shape), generator=generator)
        elif key in depth_keys:
            out[key] = torch.rand((batch, c.n_obs_steps, 1, *c.image_shape), generator=generator)
        else:
            out[key] = torch.rand((batch, c.n_obs_steps, policy.normalizer.dim(key)), generator=generator) * 2 - 1
    return out


def export_onnx(policy, out_dir: str | os.PathLike, opset: int = OPSET) -> Path:
    """Export the denoiser and the observation encoder of `policy` to out_dir (created if needed).
    For a runner without files to keep, use OnnxDiffusionRunner.from_policy (nothing left in /tmp)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = policy.config
    # export CPU copies in eval mode: the live policy keeps its device and mode
    unet = copy.deepcopy(policy.unet).cpu().eval()
    encoder = PositionalObservationEncoder(copy.deepcopy(policy.obs_encoder).cpu().eval())
    obs_inputs = _example_inputs(policy, batch=1)
    input_keys = list(obs_inputs)
    cond_dim = policy.obs_encoder.output_dim

    sample = torch.zeros(1, c.horizon, policy.action_dim)
    timestep = torch.zeros(1, dtype=torch.int64)
    cond = torch.zeros(1, cond_dim)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(unet, (sample, timestep, cond), str(out_dir / DENOISER_FILE), opset_version=opset,
                          dynamo=False, input_names=["sample", "timestep", "global_cond"], output_names=["eps"],
                          dynamic_axes={"sample": {0: "batch"}, "timestep": {0: "batch"},
                                        "global_cond": {0: "batch"}, "eps": {0: "batch"}})
        torch.onnx.export(encoder, tuple(obs_inputs.values()), str(out_dir / ENCODER_FILE), opset_version=opset,
                          dynamo=False, input_names=input_keys, output_names=["global_cond"],
                          dynamic_axes={**{k: {0: "batch"} for k in input_keys}, "global_cond": {0: "batch"}})
    meta = {"opset": opset, "encoder_inputs": input_keys, "horizon": c.horizon, "action_dim": policy.action_dim,
            "cond_dim": cond_dim, "policy_type": policy.policy_type}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1))
    return out_dir


def default_providers() -> list[str]:
    """TensorRT and CUDA when this onnxruntime build has them, and the CPU provider always (named
    explicitly: onnxruntime-gpu requires an explicit provider list)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if gpu and not torch.cuda.is_available():
        gpu = []
    return gpu + ["CPUExecutionProvider"]


class OnnxDiffusionRunner:
    """ONNX Runtime sessions for the encoder and denoiser, with the backend interface act() uses."""
    name = "onnx"

    def __init__(self, onnx_dir: str | os.PathLike, providers: list[str] | None = None, num_threads: int = 2):
        import onnxruntime as ort

        onnx_dir = Path(onnx_dir)
        for fname in (DENOISER_FILE, ENCODER_FILE, META_FILE):
            if not (onnx_dir / fname).is_file():
                raise FileNotFoundError(f"ONNX export file missing: {onnx_dir / fname}")
        self.meta = json.loads((onnx_dir / META_FILE).read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.providers = providers or default_providers()
        self.denoiser = ort.InferenceSession(str(onnx_dir / DENOISER_FILE), options, providers=self.providers)
        self.encoder = ort.InferenceSession(str(onnx_dir / ENCODER_FILE), options, providers=self.providers)
        self.encoder_inputs = list(self.meta["encoder_inputs"])
        self.onnx_dir = onnx_dir

    @classmethod
    def from_policy(cls, policy, providers: list[str] | None = None, num_threads: int = 2) -> "OnnxDiffusionRunner":
        """Export `policy` and open the graphs, leaving no files behind: ONNX Runtime reads a model into
        memory when the session is created, so the export folder is deleted right after (a temporary
        folder kept for the runner's life would leak whenever the process is killed)."""
        with tempfile.TemporaryDirectory(prefix="policy_onnx_") as tmp:
            runner = cls(export_onnx(policy, tmp), providers=providers, num_threads=num_threads)
        runner.onnx_dir = None
        return runner

    @staticmethod
    def files_present(onnx_dir) -> bool:
        return all((Path(onnx_dir) / f).is_file() for f in (DENOISER_FILE, ENCODER_FILE, META_FILE))

    def encode(self, obs_norm: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {k: _np32(obs_norm[k]) for k in self.encoder_inputs}
        device = obs_norm[self.encoder_inputs[0]].device
        return torch.from_numpy(self.encoder.run(None, feed)[0]).to(device)

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        feed = {"sample": _np32(x), "timestep": t.detach().cpu().numpy().astype(np.int64), "global_cond": _np32(cond)}
        return torch.from_numpy(self.denoiser.run(None, feed)[0]).to(x.device)


def _np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


@torch.no_grad()
def check_onnx_parity(policy, runner: OnnxDiffusionRunner, tol: float = 1e-4, batch: int = 2, seed: int = 0) -> float:
    """Max |ONNX - torch| over encoder outputs, one denoiser call and a full DDIM sample; raises
    OnnxParityError above `tol`. Does not touch the policy's own RNG or warm start."""
    from policy_stack.denoising import DDIMSampler

    gen = torch.Generator().manual_seed(seed)
    was_training = policy.training
    policy.eval()
    try:
        obs = {k: v.to(policy.device) for k, v in _example_inputs(policy, batch, gen).items()}
        cond_torch = policy.obs_encoder(obs)
        cond_onnx = runner.encode(obs)
        diffs = [(cond_torch - cond_onnx).abs().max().item()]

        x = torch.randn(batch, policy.config.horizon, policy.action_dim, generator=gen).to(policy.device)
        t = torch.randint(0, policy.schedule.num_train_timesteps, (batch,), generator=gen).to(policy.device)
        diffs.append((policy.unet(x, t, cond_torch) - runner.eps(x, t, cond_torch)).abs().max().item())

        sampler = DDIMSampler(policy.schedule, 10)
        shape = (batch, policy.config.horizon, policy.action_dim)
        chunk_torch = sampler.sample(policy.unet, cond_torch, shape, torch.Generator().manual_seed(seed))
        chunk_onnx = sampler.sample(runner.eps, cond_onnx, shape, torch.Generator().manual_seed(seed))
        diffs.append((chunk_torch - chunk_onnx).abs().max().item())
    finally:
        policy.train(was_training)
    # A NaN difference compares false against tol (and max() can hide it): treat it as the worst case.
    worst = float("inf") if any(d != d for d in diffs) else max(diffs)
    if not worst <= tol:  # also catches NaN
        raise OnnxParityError(f"ONNX vs torch max |diff| {worst:.3g} > tol {tol:g} "
                              f"(encoder {diffs[0]:.3g}, denoiser {diffs[1]:.3g}, DDIM-10 chunk {diffs[2]:.3g})")
    return worst
