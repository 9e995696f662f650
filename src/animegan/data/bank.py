"""All training images as one uint8 tensor, served as float batches in [-1, 1].

Decoding and resizing happen once, when the bank is built. Each epoch is a permutation
drawn from (seed, epoch) alone, so a resumed run replays the same batch order without
storing it. Flip and scaling run on the whole batch, on the training device.
"""

from __future__ import annotations

import hashlib

import torch

from animegan.distributed import Shard


def images_fingerprint(images: torch.Tensor) -> str:
    """Hash of the images themselves (uint8 [N, 3, S, S]): whatever the dataset's source,
    the same pixels give the same fingerprint, and any change gives another. FID's
    reference statistics and a resume's batch-order check both key on it."""
    array = images.cpu().contiguous().numpy()
    h = hashlib.sha256(str(tuple(array.shape)).encode())
    h.update(memoryview(array.reshape(-1)))
    return h.hexdigest()


class ImageBank:
    def __init__(self, images: torch.Tensor, flip: bool = True):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.flip = flip

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def fingerprint(self) -> str:
        return images_fingerprint(self.images)

    def to(self, device: torch.device) -> "ImageBank":
        """Keep the uint8 images on the training device (a CUDA bank skips host copies)."""
        self.images = self.images.to(device)
        return self

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self) // batch_size  # the last partial batch is dropped: BN wants full batches

    def epoch_order(self, seed: int, epoch: int) -> torch.Tensor:
        """The permutation of image indices for `epoch` (0-based), a function of (seed, epoch)."""
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        return torch.randperm(len(self), generator=g)

    def batch(self, indices: torch.Tensor, rng: torch.Generator, channels_last: bool = False,
              shard: Shard = Shard()) -> torch.Tensor:
        """Float batch in [-1, 1] of this process's slice of the global batch `indices`,
        flipped at random when enabled (the flips drawn for the global batch)."""
        indices = shard.take(indices)
        x = self.images[indices.to(self.images.device)].to(rng.device, non_blocking=True)
        x = x.float().mul_(2.0 / 255.0).sub_(1.0)
        if self.flip:
            flip = shard.take(torch.rand(x.shape[0] * shard.count, device=rng.device, generator=rng)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
