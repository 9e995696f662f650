"""Draw faces from a trained generator, from Python: what `animegan-sample` does, as an object.

    import animegan
    faces = animegan.load_generator("afg.pt")      # the generator that ships with animegan
    faces.grid(64, seed=0)                          # a PIL image: shows itself in a notebook

`animegan-sample` is built on this module, so the same seed gives the same faces in both.
Nothing here trains, and torch is imported only when a generator is loaded (the command
line checks its arguments with the limits below before that).
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Mapping, Optional, Union

from animegan.errors import AnimeganError

if TYPE_CHECKING:
    import torch
    from PIL import Image

MAX_GRID = 1024  # images in one grid
MAX_SEED = 2**32 - 1
MIN_TRUNCATION = 0.05  # below, redrawing latents until every |z| fits takes ever longer
MAX_BATCH = 4096


def load_generator(path_or_name: Union[str, Path], device: str = "auto") -> "FaceGenerator":
    """A trained generator, ready to draw faces.

    `path_or_name`: a generator export (`generator.pt`, `afg.pt`) or a training checkpoint
    (`last.pt`: its EMA weights when the run kept them), looked up as `animegan-sample
    --ckpt` does: the path as given, then ./checkpoints/NAME, then the generators installed
    with animegan, so `load_generator("afg.pt")` works from any folder. `device`: "auto"
    (CUDA when PyTorch sees a GPU), "cpu", "cuda" or "cuda:N". Loaded with
    `torch.load(weights_only=True)`; a file that is not an animegan checkpoint raises
    AnimeganError with a one-line message.
    """
    from animegan.device import select_device
    from animegan.sampling import load_network

    if not isinstance(path_or_name, (str, Path)) or not str(path_or_name).strip():
        raise AnimeganError(f"load_generator needs a checkpoint path or name, got {path_or_name!r}")
    path = resolve_checkpoint(str(path_or_name))
    network, model_config = load_network(path, select_device(str(device)))
    return FaceGenerator(network, model_config, path)


def untrained_generator(model_config: Mapping, device: str = "auto", seed: int = 0) -> "FaceGenerator":
    """A new DCGAN generator with the paper's initialisation (seeded: the same `seed`, the
    same weights), from a model config such as configs/model/dcgan64.yaml (keys left out
    take their defaults). Checked like a config on the command line before it is built."""
    import torch

    from animegan.config_checks import validate_model
    from animegan.device import select_device
    from animegan.models import build_generator

    if not isinstance(model_config, Mapping):
        raise AnimeganError(f"model_config must be a mapping such as {{'image_size': 64, 'ngf': 64}}, got {model_config!r}")
    model = validate_model(dict(model_config), "model_config")
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(seed)
        network = build_generator(model)
    return FaceGenerator(network.to(select_device(str(device))).eval(), dataclasses.asdict(model), Path("untrained"))


class FaceGenerator:
    """A generator network in eval mode with its model config (`config`: nz, ngf,
    image_size, ...) and the file it came from (`source`). Every method returns new
    images; none of them changes the network."""

    def __init__(self, network: "torch.nn.Module", config: dict, source: Path):
        self.network, self.config, self.source = network, dict(config), Path(source)

    def __repr__(self) -> str:
        return f"FaceGenerator({self.source.name}: {self.image_size}px, nz {self.nz}, on {self.device})"

    @property
    def image_size(self) -> int:
        """Height and width of the faces, in pixels."""
        return int(self.config["image_size"])

    @property
    def nz(self) -> int:
        """Length of the latent vector each face is drawn from."""
        return int(self.network.nz)

    @property
    def device(self) -> "torch.device":
        """Where the network runs (the faces come back on the CPU)."""
        return next(self.network.parameters()).device

    def sample(self, n: int = 64, seed: Optional[int] = None, truncation: Optional[float] = None) -> "torch.Tensor":
        """`n` faces as a uint8 tensor [n, 3, H, W] on the CPU. The same `seed` gives the same
        faces (those of `animegan-sample --seed`); None draws a new seed each call.
        `truncation` T redraws latent entries with |z| > T: less variety, fewer odd faces."""
        import torch

        return torch.cat(list(self.batches(n, seed, truncation)))

    def batches(self, n: int, seed: Optional[int] = None, truncation: Optional[float] = None,
                batch: int = 256) -> Iterator["torch.Tensor"]:
        """The faces of sample(n, seed, truncation), `batch` at a time (for more than fit in
        memory at once; the faces do not depend on `batch`)."""
        from animegan.sampling import generate

        check_sampling(n, seed, truncation, limit=None)
        if not (isinstance(batch, int) and 1 <= batch <= MAX_BATCH):
            raise AnimeganError(f"batch must be 1 to {MAX_BATCH}, got {batch!r}")
        return generate(self.network, n, seed=_seed(seed), chunk=batch, truncation=truncation)

    def sample_images(self, n: int = 64, seed: Optional[int] = None,
                      truncation: Optional[float] = None) -> List["Image.Image"]:
        """The faces of sample(...) as PIL images."""
        from PIL import Image

        return [Image.fromarray(face.permute(1, 2, 0).numpy()) for face in self.sample(n, seed, truncation)]

    def interpolate(self, keys: int = 8, steps: int = 10, seed: Optional[int] = None,
                    truncation: Optional[float] = None) -> "torch.Tensor":
        """A closed walk through `keys` random faces, `steps` frames from each to the next:
        uint8 [keys, steps + 1, 3, H, W], row i from face i to face i + 1 (the last row
        back to face 0), both ends included. What `animegan-sample --interpolate` draws."""
        from animegan.sampling import interpolate

        check_sampling(keys, seed, truncation, limit=MAX_GRID)
        if not (isinstance(keys, int) and keys >= 2 and isinstance(steps, int) and steps >= 1
                and keys * (steps + 1) <= MAX_GRID):
            raise AnimeganError(f"interpolate needs keys >= 2 and steps >= 1 with keys x (steps + 1) <= {MAX_GRID}, "
                                f"got keys={keys!r}, steps={steps!r}")
        return interpolate(self.network, keys, steps, seed=_seed(seed), truncation=truncation)

    def grid(self, images: Union[int, "torch.Tensor"] = 64, nrow: Optional[int] = None, seed: Optional[int] = None,
             truncation: Optional[float] = None) -> "Image.Image":
        """One PIL image of faces side by side, as `animegan-sample` writes it: `images` is a
        number of new faces (sampled with `seed`, `truncation`), a uint8 tensor [n, 3, H, W]
        from sample(), or a walk [keys, steps + 1, 3, H, W] from interpolate() (one row per
        transition). `nrow`: faces per row (default: square-ish, or a walk's row)."""
        import torch
        from PIL import Image

        from animegan.artefacts import tile_images

        if isinstance(images, int):
            check_sampling(images, seed, truncation, limit=MAX_GRID)
            images = self.sample(images, seed, truncation)
        if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() in (4, 5)
                and images.shape[-3] == 3):
            raise AnimeganError("grid needs a number of faces, or uint8 images [n, 3, H, W] from sample() or a walk "
                                "[keys, steps + 1, 3, H, W] from interpolate()")
        if images.dim() == 5:
            nrow = nrow or images.shape[1]
            images = images.flatten(0, 1)
        if not 1 <= len(images) <= MAX_GRID:
            raise AnimeganError(f"a grid holds 1 to {MAX_GRID} faces, got {len(images)}")
        nrow = nrow or max(1, int(round(len(images) ** 0.5)))
        if not (isinstance(nrow, int) and 1 <= nrow <= MAX_GRID):
            raise AnimeganError(f"nrow must be 1 to {MAX_GRID}, got {nrow!r}")
        return Image.fromarray(tile_images(images, nrow))


def check_sampling(n: int, seed: Optional[int], truncation: Optional[float], limit: Optional[int]) -> None:
    """Refuse, in one line, a number of faces, a seed or a truncation that cannot work."""
    if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= (limit or 10**9)):
        raise AnimeganError(f"the number of faces must be an integer from 1{f' to {limit}' if limit else ''}, got {n!r}")
    if seed is not None and not (isinstance(seed, int) and 0 <= seed <= MAX_SEED):
        raise AnimeganError(f"seed must be None or an integer from 0 to {MAX_SEED}, got {seed!r}")
    if truncation is not None and not (isinstance(truncation, (int, float)) and truncation >= MIN_TRUNCATION):
        raise AnimeganError(f"truncation must be None or a number >= {MIN_TRUNCATION} (e.g. 1.0), got {truncation!r}")


def _seed(seed: Optional[int]) -> int:
    return secrets.randbelow(MAX_SEED + 1) if seed is None else seed


def resolve_checkpoint(name: str) -> Path:
    """A path as given; a bare file name that is not a file here is looked up in
    ./checkpoints/, then among the generators shipped with animegan (afg.pt)."""
    path = Path(name).expanduser()
    if path.exists() or path.parent != Path("."):
        return path
    for candidate in (Path("checkpoints") / name, Path("checkpoints") / f"{name}.pt", shipped(name),
                      shipped(f"{name}.pt")):
        if candidate is not None and candidate.is_file():
            return candidate
    return path


def shipped(name: str) -> Optional[Path]:
    """A generator shipped inside the installed package (animegan.checkpoints), or None."""
    from importlib import resources

    try:
        candidate = resources.files("animegan.checkpoints") / name
    except ModuleNotFoundError:
        return None
    return Path(str(candidate)) if candidate.is_file() else None
