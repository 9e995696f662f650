"""DCGAN discriminator: image -> (strided conv, BN, LeakyReLU) x k -> one logit per image."""

import math

import torch
from torch import nn


class Discriminator(nn.Module):
    """Maps images [N, 3, S, S] to logits [N]. No Sigmoid: the loss works on logits,
    which is numerically safe and allowed under autocast."""

    def __init__(
        self,
        ndf: int = 64,
        image_size: int = 64,
        channels: int = 3,
        dropout: float = 0.0,
        leaky_slope: float = 0.2,
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
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), *act()]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]  # 4x4 -> 1x1 logit
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
