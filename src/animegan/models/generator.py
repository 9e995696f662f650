"""DCGAN generator: latent z -> 4x4 -> (transposed conv, BN, ReLU) x k -> Tanh image."""

import math

import torch
from torch import nn


class Generator(nn.Module):
    """Maps z of shape [N, nz] (or [N, nz, 1, 1]) to images [N, 3, S, S] in [-1, 1].

    The number of upsampling stages follows from the image size: S = 4 * 2**stages.
    Widths halve at each stage and end at ngf before the RGB layer, as in the paper.
    Options beyond the paper: `leaky_slope` > 0 uses LeakyReLU instead of ReLU, `dropout`
    > 0 adds dropout after each hidden block (active in training only), `batchnorm=False`
    drops BatchNorm (each image's output then depends on its own latent only).
    """

    def __init__(self, nz: int = 100, ngf: int = 64, image_size: int = 64, channels: int = 3,
                 dropout: float = 0.0, leaky_slope: float = 0.0, batchnorm: bool = True):
        super().__init__()
        stages = int(math.log2(image_size)) - 2  # 4x4 -> image_size
        if 4 * 2**stages != image_size or stages < 2:
            raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
        self.nz, self.image_size = nz, image_size

        def act() -> list:
            relu = nn.LeakyReLU(leaky_slope, inplace=True) if leaky_slope > 0 else nn.ReLU(inplace=True)
            return [relu] + ([nn.Dropout(dropout)] if dropout > 0 else [])

        def norm(w: int) -> list:  # without BatchNorm the convolutions get their biases back
            return [nn.BatchNorm2d(w)] if batchnorm else []

        width = ngf * 2 ** (stages - 1)
        layers = [  # project z to a 4x4 map: a transposed conv on a 1x1 input
            nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=not batchnorm),
            *norm(width),
            *act(),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=not batchnorm),
                *norm(width // 2),
                *act(),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.net(z)
