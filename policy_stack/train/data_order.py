"""A DistributedSampler that can start mid-epoch, so a resumed run sees exactly the batches the
killed run would have seen next (same shuffle per epoch: seeded by seed + epoch, as upstream)."""
from __future__ import annotations

from torch.utils.data import DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    def __init__(self, dataset, num_replicas: int, rank: int, seed: int, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=drop_last)
        self.start_index = 0

    def set_position(self, epoch: int, start_index: int) -> None:
        """Next __iter__ yields epoch `epoch`'s indices from `start_index` on (samples, this rank)."""
        self.set_epoch(epoch)
        self.start_index = int(start_index)

    def __iter__(self):
        indices = list(super().__iter__())
        start, self.start_index = self.start_index, 0   # only the first epoch after resume is partial
        return iter(indices[start:])
