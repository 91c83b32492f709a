"""DistributedDataParallel helpers: one code path for 1 process and for `torchrun` launches.

torchrun exports RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; when they are present we
join the process group (gloo on CPU, nccl on CUDA). Everything else in the trainer asks this object
"am I rank 0?" instead of reading the environment again, so a plain `policy-stack train` stays a
world of size 1 with no process group at all.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False      # True when we created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Same-shape tensors from every rank (rank order). Used for RNG states, so no pickling
        (all_gather_object would pickle)."""
        if not self.enabled:
            return [tensor]
        tensor = tensor.to(self._comm_device())
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(out, tensor)
        return [t.cpu() for t in out]

    def broadcast_(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        if not self.enabled:
            return tensor
        moved = tensor.to(self._comm_device())
        dist.broadcast(moved, src)
        if moved is not tensor:
            tensor.copy_(moved.to(tensor.device))
        return tensor

    def all_reduce_max(self, value: float) -> float:
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def _comm_device(self) -> torch.device:
        # nccl only moves CUDA tensors; gloo only CPU ones.
        return self.device if (self.enabled and dist.get_backend() == "nccl") else torch.device("cpu")

    def close(self) -> None:
        if self.initialized and dist.is_initialized():
            dist.destroy_process_group()
            self.initialized = False


def init_distributed(device: str = "auto", timeout_min: float = 120.0) -> DistContext:
    """Read torchrun's environment and join the process group if WORLD_SIZE > 1.

    timeout: rank 0 runs sim rollouts while the other ranks wait at a barrier; gloo's default 30 min
    would kill long evaluations, hence a generous default.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    ctx = DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_min))
        ctx.initialized = True
    return ctx
