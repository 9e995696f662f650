"""Many processes, one run: `torchrun --nproc_per_node=N -m animegan ...`.

torchrun starts N copies of the program and tells each its place (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR/PORT in the environment). Each process trains on its own slice of
every global batch; after each backward pass the gradients are averaged over all
processes (one all_reduce per network update), so every process takes the same optimizer
step and the weights stay identical everywhere.

Why gradients are averaged here instead of wrapping the networks in the
DistributedDataParallel module: a GAN step runs D forward twice (real, fake) before one
backward, differentiates D's gradient for R1 and WGAN-GP, and freezes D's weights during
G's update. DDP's reducer is built for one forward, one backward per step and supports
none of these (its docs: it "does not work with torch.autograd.grad()"). Averaging the
flattened gradients with one collective per update is what DDP computes, minus its
overlap of communication with the backward pass; NVlabs' StyleGAN3 trains GANs with R1
this way for the same reasons.

Randomness: every process holds the loop's random generator in the same state and draws
each random tensor (latents, flips, DiffAugment, instance noise, penalty mixing) for the
whole global batch, keeping its own slice (`Shard`). N processes at global batch B then
draw exactly what one process at batch B draws, and the checkpoint needs one generator
state. Only rank 0 writes files.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

import torch

# Long enough for rank 0 to compute FID on a CPU while the others wait at a barrier.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Shard:
    """This process's part of every global batch: samples [index * n, (index + 1) * n)."""

    index: int = 0
    count: int = 1

    def local(self, global_n: int) -> int:
        return global_n // self.count

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """This process's slice (along dim 0) of a tensor made for the global batch."""
        if self.count == 1:
            return t
        n = t.shape[0] // self.count
        return t[self.index * n:(self.index + 1) * n]

    def global_like(self, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor shaped like `like` but for the global batch (same memory
        layout, so a random fill gives this slice the numbers one process would get)."""
        if self.count == 1:
            return torch.empty_like(like)
        fmt = torch.channels_last if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last) \
            and not like.is_contiguous() else torch.contiguous_format
        return torch.empty((like.shape[0] * self.count, *like.shape[1:]), dtype=like.dtype, device=like.device,
                           memory_format=fmt)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the run's processes (1 process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> "Ranks":
        """What torchrun put in the environment (nothing: a single process)."""
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)


# On NCCL runs, a gloo group for small host-side messages (stop requests, objects); None
# on gloo runs, whose default group serves. Held here, like torch.distributed's own groups,
# and never by a ProcessGroup: a group object still referenced after
# destroy_process_group() is torn down at interpreter exit, where gloo's threads abort the
# process ("terminate called without an active exception", seen at the end of 2-process
# CPU runs under load).
_control_group = None


class ProcessGroup:
    """The collectives a run needs, and nothing when it runs in one process."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks

    def start(self, device_type: str) -> None:
        if not self.ranks.distributed:
            return
        import torch.distributed as dist

        global _control_group
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        if dist.get_backend() != "gloo" and _control_group is None:
            _control_group = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)

    def stop(self, clean: bool = True) -> None:
        """End the group. After a failure (`clean` False) the process just exits: waiting
        for the others could wait forever, and torchrun stops them when one fails."""
        global _control_group
        if self.ranks.distributed and clean:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()  # nobody tears the group down while another process still talks to it
                dist.destroy_process_group()
            _control_group = None

    @property
    def _control(self):
        return _control_group

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Replace every gradient of `module` by its mean over the processes (one collective)."""
        if not self.ranks.distributed:
            return
        import torch.distributed as dist

        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.ranks.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of `t` over the processes (a new tensor)."""
        if not self.ranks.distributed:
            return t
        import torch.distributed as dist

        t = t.clone()
        dist.all_reduce(t)
        return t / self.ranks.world

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is True on any: decisions to stop must agree,
        or the processes would wait for each other's next collective forever."""
        if not self.ranks.distributed:
            return flag
        import torch.distributed as dist

        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._control)
        return bool(t.item())

    def gather(self, obj: Any) -> List[Any]:
        """Every process's `obj`, in rank order (on every process)."""
        if not self.ranks.distributed:
            return [obj]
        import torch.distributed as dist

        out: List[Optional[Any]] = [None] * self.ranks.world
        dist.all_gather_object(out, obj, group=self._control)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every process."""
        if not self.ranks.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self._control)
        return box[0]

    def barrier(self) -> None:
        if self.ranks.distributed:
            import torch.distributed as dist

            dist.barrier(group=self._control)


def local_device(device: torch.device, ranks: Ranks) -> torch.device:
    """One GPU per process on a machine: cuda:LOCAL_RANK (a plain `cuda` means that)."""
    if device.type == "cuda" and ranks.distributed and device.index is None:
        return torch.device("cuda", ranks.local_rank)
    return device

