"""DCGAN discriminator: image -> (strided conv, BN, LeakyReLU) x k -> one logit per image."""

import math

import torch
from torch import nn


class MinibatchStd(nn.Module):
    """Appends one feature map holding the standard deviation of the features across the
    batch, averaged to a single number (Karras et al. 2018, "Progressive Growing of GANs").
    A batch of look-alike fakes has a lower std than a batch of real faces, so D can
    penalise G for mode collapse. D sees real and fake images in separate batches here,
    which makes the statistic as telling as it can be."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.float().var(dim=0, unbiased=False).add(1e-8).sqrt().mean().to(x.dtype)
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class Discriminator(nn.Module):
    """Maps images [N, 3, S, S] to logits [N]. No Sigmoid: the loss works on logits,
    which is numerically safe and allowed under autocast.

    Options: `dropout` after each block, `leaky_slope`, `batchnorm=False` (no BatchNorm,
    e.g. with spectral norm or a gradient penalty), `minibatch_std` before the last conv.
    """

    def __init__(
        self,
        ndf: int = 64,
        image_size: int = 64,
        channels: int = 3,
        dropout: float = 0.0,
        leaky_slope: float = 0.2,
        batchnorm: bool = True,
        minibatch_std: bool = False,
    ):
        super().__init__()
        stages = int(math.log2(image_size)) - 2  # image_size -> 4x4
        if 4 * 2**stages != image_size or stages < 2:
            raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")

        def act() -> list:
            return [nn.LeakyReLU(leaky_slope, inplace=True)] + ([nn.Dropout(dropout)] if dropout > 0 else [])

        # The first block has no BatchNorm, as in the paper.
        layers = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), *act()]
        width = ndf
        for _ in range(stages - 1):
            norm = [nn.BatchNorm2d(width * 2)] if batchnorm else []
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=not batchnorm), *norm, *act()]
            width *= 2
        if minibatch_std:
            layers += [MinibatchStd()]
        layers += [nn.Conv2d(width + int(minibatch_std), 1, 4, 1, 0, bias=False)]  # 4x4 -> 1x1 logit
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
