"""Load a trained generator from either checkpoint format and draw images from it:
random faces (optionally truncated latents) and spherical interpolations between them."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import torch

from animegan.artefacts import to_uint8
from animegan.checkpoint import generator_weights, load_checkpoint
from animegan.config_checks import validate_model
from animegan.errors import AnimeganError
from animegan.models import Generator, build_generator

LATENT_BLOCK = 256  # latents are drawn in blocks of this size, whatever the generation chunk


def load_network(path: Path, device: torch.device) -> Tuple[Generator, dict]:
    """(the Generator in eval mode on `device`, its model config) from a generator.pt or a
    training last.pt (the EMA weights when the run kept them). animegan.load_generator
    wraps this for users.

    Checkpoints are loaded onto the CPU first, so one trained on CUDA works anywhere.
    """
    model, weights = generator_weights(load_checkpoint(path))
    model = validate_model(model, str(path))  # a file from elsewhere may ask for any size: check before building
    try:
        generator = build_generator(model)
        generator.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnimeganError(f"{path} has an animegan header but its generator does not load ({reason})") from None
    return generator.to(device).eval(), dataclasses.asdict(model)


def truncate_(z: torch.Tensor, threshold: float, rng: torch.Generator) -> torch.Tensor:
    """The truncation trick (Brock et al. 2019, BigGAN): redraw every entry with
    |z| > threshold until none is left, trading variety for quality. In place; returns z."""
    if threshold <= 0:
        raise AnimeganError(f"--truncation must be > 0, got {threshold}")
    while True:
        bad = z.abs() > threshold
        count = int(bad.sum())
        if count == 0:
            return z
        z[bad] = torch.randn(count, generator=rng, dtype=z.dtype)


def latents(n: int, nz: int, seed: int = 0, truncation: Optional[float] = None) -> Iterator[torch.Tensor]:
    """Yield n latent vectors [k, nz] on the CPU in blocks of LATENT_BLOCK, from one CPU
    generator seeded with `seed`: the same seed gives the same latents on any device, for
    any generation chunk size, with or without a truncation redraw."""
    rng = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        k = min(LATENT_BLOCK, n - done)
        z = torch.randn(k, nz, generator=rng)
        yield truncate_(z, truncation, rng) if truncation is not None else z
        done += k



@contextmanager
def eval_mode(generator: torch.nn.Module):
    """G in eval mode (BatchNorm's running statistics, no dropout) and without autograd,
    put back as it was afterwards: sampling from a generator in training leaves it untouched."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            yield generator
    finally:
        generator.train(was_training)


def sample(generator: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Images for `z` from G in eval mode (BatchNorm running statistics), fp32, no autograd."""
    with eval_mode(generator):
        return generator(z).float()


def generate(generator: Generator, n: int, seed: int = 0, chunk: int = 256,
             truncation: Optional[float] = None) -> Iterator[torch.Tensor]:
    """Yield uint8 images [k, 3, S, S] on the CPU, `chunk` at a time, for n images in all."""
    device = next(generator.parameters()).device
    pending: List[torch.Tensor] = []  # latents drawn but not generated yet
    count = 0
    for z in latents(n, generator.nz, seed, truncation):
        pending.append(z)
        count += len(z)
        while count >= chunk:
            z_all = torch.cat(pending)
            with eval_mode(generator):
                images = to_uint8(generator(z_all[:chunk].to(device)))
            yield images
            pending, count = [z_all[chunk:]], count - chunk
    if count:
        with eval_mode(generator):
            images = to_uint8(generator(torch.cat(pending).to(device)))
        yield images


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (White 2016, "Sampling Generative Networks") between latent
    vectors a and b [nz] at fractions t [k] -> [k, nz]: intermediate latents keep the norm
    a Gaussian sample has, unlike a straight line through the low-density centre."""
    a, b, t = a.double(), b.double(), t.double()[:, None]
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:  # (nearly) parallel: the straight line is the arc
        return ((1 - t) * a + t * b).float()
    return ((torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)).float()


def interpolate(generator: Generator, keys: int, steps: int, seed: int = 0,
                truncation: Optional[float] = None) -> torch.Tensor:
    """A closed latent walk through `keys` random latents (seeded), `steps` frames from each
    key to the next (the key itself first). uint8 images [keys, steps + 1, 3, S, S]: row i
    goes from key i to key i+1 (the last row back to key 0), end key included."""
    device = next(generator.parameters()).device
    z = torch.cat(list(latents(keys, generator.nz, seed, truncation)))
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    rows = torch.stack([slerp(z[i], z[(i + 1) % keys], t) for i in range(keys)])  # [keys, steps+1, nz]
    with eval_mode(generator):
        images = generator(rows.flatten(0, 1).to(device))
    return to_uint8(images).unflatten(0, (keys, steps + 1))
