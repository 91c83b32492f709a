"""CUDA-graph backend for the diffusion denoiser: one graph replay per denoising step.

At batch 1 the UNet is launch-bound on a GPU: its ~100 small kernels cost more in launch overhead than
in compute, so an H100 ran RTI-3 no faster than the CPU (docs/results.md). A CUDA graph records the
kernels of one denoiser call once and replays them with a single launch. The sampler loop (DDPM, DDIM,
RTI) stays in Python and calls eps() per step, so every sampler benefits without being rewritten.

Static buffers: a graph reads and writes fixed tensors, so eps() copies x, t and cond into them,
replays, and returns a copy of the output. One graph per input shape (the encoder output and chunk
shape are fixed per policy, so in practice one graph, plus one per batch size used).
The observation encoder runs eagerly (once per tick, it is not the bottleneck).
"""
from __future__ import annotations

import torch


class CudaGraphBackend:
    name = "cuda_graph"

    def __init__(self, policy, warmup: int = 3):
        if policy.device.type != "cuda":
            raise ValueError(f"backend 'cuda_graph' needs the policy on a CUDA device, it is on {policy.device} "
                             "(use --device cuda, or the torch backend on the CPU)")
        self.policy, self.warmup = policy, int(warmup)
        self._graphs: dict[tuple, tuple] = {}

    def encode(self, obs_norm: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy.obs_encoder(obs_norm)

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        key = (tuple(x.shape), tuple(t.shape), t.dtype, tuple(cond.shape))
        entry = self._graphs.get(key) or self._capture(key, x, t, cond)
        graph, sx, st, sc, out = entry
        sx.copy_(x)
        st.copy_(t)
        sc.copy_(cond)
        graph.replay()
        return out.clone()

    @torch.no_grad()
    def _capture(self, key, x, t, cond):
        unet = self.policy.unet
        sx, st, sc = x.detach().clone(), t.detach().clone(), cond.detach().clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):            # warm-up on a side stream, as torch.cuda.graphs requires
            for _ in range(self.warmup):
                unet(sx, st, sc)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = unet(sx, st, sc)
        self._graphs[key] = (graph, sx, st, sc, out)
        return self._graphs[key]
