"""ONNX export for EBT: the energy AND its action-gradient, as one static graph.

Why not the obvious routes (measured with torch 2.13 CPU, onnx 1.23, onnxruntime 1.23):
- torch.onnx.export(dynamo=False) of a module that calls torch.autograd.grad inside forward fails
  ("Cannot insert a Tensor that requires grad as a constant"): the TorchScript tracer does not record the
  backward pass.
- torch.onnx.export(dynamo=True) needs `onnxscript`, which is not installed here (and torch.export does
  not promise autograd.grad inside a graph either).
- Exporting the energy only would leave the descent needing finite differences: 2*Tp*A extra energy
  evaluations per step, 100x the cost of the backward pass.

What works: `make_fx` traces forward + backward into a plain graph of aten ops (the backward becomes
ordinary matmuls, GELU derivatives, ...). With softmax decomposed to exp/sum/div (the legacy exporter
has no symbolic for aten::_softmax) and dE/da requested with grad_outputs=ones (a `.sum()` would trace
to a zero-dim-list reduction the legacy exporter mis-types), the TorchScript exporter turns that graph
into ONNX that matches torch to ~1e-8.

Limits: shapes are static (the batch size is baked in: export one file per batch size; act() uses 1),
and the descent loop itself (Nesterov step, energy-scaled step size, early stop) stays in Python, calling
the graph once per step. The observation side exports directly (no autograd inside).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

ENERGY_GRAD_FILE = "ebt_energy_grad.onnx"
ENCODER_FILE = "ebt_encoder.onnx"


def _softmax_decomposition(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    z = x - x.amax(dim, keepdim=True)
    e = torch.exp(z)
    return e / e.sum(dim, keepdim=True)


def trace_energy_grad(energy: nn.Module, cond: torch.Tensor, actions: torch.Tensor) -> torch.fx.GraphModule:
    """(cond, actions) -> (energy (B,), dE/dactions (B, Tp, A)) as an FX graph of plain aten ops."""
    from torch._decomp import core_aten_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    table = dict(core_aten_decompositions())
    table[torch.ops.aten._softmax.default] = _softmax_decomposition

    def energy_and_grad(c: torch.Tensor, a: torch.Tensor):
        a = a.requires_grad_(True)
        e = energy(c, a)
        (g,) = torch.autograd.grad(e, a, grad_outputs=torch.ones_like(e))
        return e.detach(), g.detach()

    was_training = energy.training
    energy.eval()
    try:
        with torch.enable_grad():
            return make_fx(energy_and_grad, decomposition_table=table)(cond.detach(), actions.detach().clone())
    finally:
        energy.train(was_training)


class _Encoder(nn.Module):
    """Positional normalized observation histories -> condition tokens (B, To, d)."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.keys = policy.obs_encoder.input_keys

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.policy.encode(dict(zip(self.keys, inputs)))


def export_onnx(policy, folder: str | os.PathLike, batch: int = 1, opset: int = 17) -> Path:
    """Write `ebt_encoder.onnx` (normalized obs -> cond tokens) and `ebt_energy_grad.onnx`
    ((cond, actions) -> (energy, grad)) for a fixed batch size. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = policy.config
    policy.eval()
    example = {}
    for key in policy.obs_encoder.lowdim_keys:
        example[key] = torch.zeros(batch, c.n_obs_steps, policy.normalizer.dim(key))
    for cam in c.cameras:
        example[f"{cam}_rgb"] = torch.zeros(batch, c.n_obs_steps, 3, *c.image_shape)
        if c.use_depth:
            example[f"{cam}_depth"] = torch.zeros(batch, c.n_obs_steps, 1, *c.image_shape)
    encoder = _Encoder(policy)
    inputs = tuple(example[k] for k in encoder.keys)
    with torch.no_grad():
        cond = encoder(*inputs)
        torch.onnx.export(encoder, inputs, str(folder / ENCODER_FILE), input_names=list(encoder.keys),
                          output_names=["cond"], opset_version=opset, dynamo=False)
    actions = torch.zeros(batch, c.horizon, policy.action_dim)
    graph = trace_energy_grad(policy.energy, cond, actions)
    torch.onnx.export(graph, (cond, actions), str(folder / ENERGY_GRAD_FILE), input_names=["cond", "actions"],
                      output_names=["energy", "grad"], opset_version=opset, dynamo=False)
    return folder
