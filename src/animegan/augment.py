"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same random, differentiable transforms on every image D sees, real and
fake, in D's and in G's update, so D cannot memorise a small dataset and G still gets
gradients through the transform.

Transforms follow the reference implementation (github.com/mit-han-lab/data-efficient-gans,
DiffAugment_pytorch.py) on images in [-1, 1]:
- color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5), per image
- translation: shift by up to 1/8 of the size in x and y, zero padding, per image
- cutout: one zeroed square of half the size at a random place, per image

Every random draw comes from the generator passed in (the loop's checkpointed `rng`),
and depends only on the batch shape, never on the pixels: real and fake batches get the
same transform family with independent parameters per image, and a resumed run replays
the same augmentations. In a run of several processes the parameters are drawn for the
global batch and each process keeps its slice (animegan.distributed.Shard).
"""

from __future__ import annotations

from typing import Callable, List, Sequence

import torch
import torch.nn.functional as F

from animegan.choices import AUGMENTATIONS
from animegan.distributed import Shard

Transform = Callable[[torch.Tensor, torch.Generator, Shard], torch.Tensor]


def _uniform(x: torch.Tensor, rng: torch.Generator, shard: Shard) -> torch.Tensor:
    return shard.take(torch.rand(x.shape[0] * shard.count, 1, 1, 1, device=x.device, dtype=x.dtype, generator=rng))


def _randint(low: int, high: int, x: torch.Tensor, rng: torch.Generator, shard: Shard) -> torch.Tensor:
    return shard.take(torch.randint(low, high, (x.shape[0] * shard.count, 1, 1), device=x.device, generator=rng))


def color(x: torch.Tensor, rng: torch.Generator, shard: Shard = Shard()) -> torch.Tensor:
    x = x + (_uniform(x, rng, shard) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, rng, shard) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, rng, shard) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, rng: torch.Generator, shard: Shard = Shard(), ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(-sh, sh + 1, x, rng, shard)
    tx = _randint(-sw, sw + 1, x, rng, shard)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # a zero border that out-of-range pixels read from
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, rng: torch.Generator, shard: Shard = Shard(), ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(0, h + (1 - ch % 2), x, rng, shard)
    ox = _randint(0, w + (1 - cw % 2), x, rng, shard)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[gb, gy, gx] = 0
    return x * mask[:, None]


def parse_policy(policy: str) -> List[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown DiffAugment transform(s) {unknown}; available: {', '.join(AUGMENTATIONS)}")
    return names


class DiffAugment:
    """Callable x -> augmented x for one policy; `rng` supplies every random number."""

    def __init__(self, policy: str | Sequence[str], rng: torch.Generator, shard: Shard = Shard()):
        self.policy = parse_policy(policy) if isinstance(policy, str) else list(policy)
        self.rng, self.shard = rng, shard
        self.transforms: List[Transform] = [AUGMENTATIONS[name].load() for name in self.policy]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # D sees the layout the run chose (train.channels_last): translation's gather leaves
        # its output NHWC whatever its input was.
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        for transform in self.transforms:
            x = transform(x, self.rng, self.shard)
        return x.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.policy)})"
