"""Load a trained generator from either checkpoint format and draw images from it."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from animegan.checkpoint import generator_weights, load_checkpoint
from animegan.errors import AnimeganError
from animegan.models import Generator


def load_generator(path: Path, device: torch.device) -> Generator:
    """A Generator in eval mode on `device`, from a generator.pt or a training last.pt.

    Checkpoints are loaded onto the CPU first, so one trained on CUDA works anywhere.
    """
    model, weights = generator_weights(load_checkpoint(path))
    try:
        generator = Generator(int(model["nz"]), int(model["ngf"]), int(model["image_size"]))
        generator.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnimeganError(f"{path} has an animegan header but its generator does not load ({reason})") from None
    return generator.to(device).eval()


@torch.no_grad()
def generate(generator: Generator, n: int, seed: int = 0, chunk: int = 256) -> Iterator[torch.Tensor]:
    """Yield uint8 images [k, 3, S, S] on the CPU, `chunk` at a time, for n images in all.

    The latent vectors come from one CPU generator seeded with `seed`, so the same seed
    gives the same faces on any device and for any chunk size.
    """
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        k = min(chunk, n - done)
        z = torch.randn(k, generator.nz, generator=rng).to(device)
        images = generator(z).float().clamp(-1, 1)
        yield images.add(1).mul(127.5).round().to(torch.uint8).cpu()
        done += k
