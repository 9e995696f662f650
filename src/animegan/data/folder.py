"""Read a folder tree of images into one uint8 tensor, resized and centre-cropped.

Undecodable files are skipped and counted, never fatal; a missing folder or one with
nothing usable gives one clear error.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import Image, ImageFile
from tqdm import tqdm

from animegan.errors import AnimeganError

log = logging.getLogger(__name__)

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(root: Path) -> List[Path]:
    """Image files below `root` (recursively, any nesting), in a stable sorted order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def load_image(path: Path, size: int) -> Tuple[Optional[np.ndarray], str]:
    """(uint8 array [size, size, 3], "") or (None, reason) for a file that cannot be used."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it is large
                im = _to_rgb(im)
                im = _resize_center_crop(im, size)
                return np.asarray(im, dtype=np.uint8), ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "decompression bomb"
    except Exception as exc:  # PIL raises many types for broken files; none may stop a run
        return None, f"undecodable ({type(exc).__name__})"


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))  # transparent -> white
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def _resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    w, h = im.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((new_w, new_h), Image.Resampling.LANCZOS)  # anti-aliased downscale
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return im.crop((left, top, left + size, top + size))


def read_folder(root: str, size: int, name: str = "folder", source: str = "") -> torch.Tensor:
    """Decode every image below `root` into a uint8 tensor [N, 3, size, size]."""
    path = Path(root).expanduser()
    if not path.is_dir():
        how = f"; {source}" if source else "; pass dataset.root=/path/to/images"
        raise AnimeganError(f"dataset '{name}': folder not found: {path.resolve()}{how}")
    files = list_images(path)
    if not files:
        raise AnimeganError(
            f"dataset '{name}': no images ({', '.join(EXTENSIONS)}) found below {path.resolve()}"
        )
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is skipped, not half-grey
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    kept, dropped = 0, Counter()
    for f in tqdm(files, desc=f"reading {name}", unit="img", leave=False, mininterval=1.0):
        arr, reason = load_image(f, size)
        if arr is None:
            dropped[reason] += 1
            continue
        out[kept] = arr
        kept += 1
    if dropped:
        log.warning("dataset '%s': skipped %d unusable files (%s)", name, sum(dropped.values()),
                    ", ".join(f"{n} {r}" for r, n in dropped.most_common()))
    if kept == 0:
        raise AnimeganError(f"dataset '{name}': none of the {len(files)} files below {path.resolve()} could be decoded")
    log.info("dataset '%s': %d images from %s at %dx%d", name, kept, path.resolve(), size, size)
    return torch.from_numpy(out[:kept]).permute(0, 3, 1, 2).contiguous()
