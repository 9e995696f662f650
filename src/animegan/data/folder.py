"""Find the image files of a folder tree, and turn one file into one training image.

`list_images` walks the tree; `decode_file` reads a single file and returns either a
uint8 array [3, size, size] or the reason it cannot be used. A broken file is never
fatal: every failure becomes a reason that the preparation counts (see cache.py), and
odd but usable files (alpha, palette, grayscale, 16-bit, CMYK, animated) are converted
and kept with a note. This module imports no torch: it runs in the decoding workers.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from typing import Iterable, List, NamedTuple, Optional, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from animegan.errors import AnimeganError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")  # read by data/archive.py
CACHE_FOLDER = ".animegan-cache"  # the default cache, inside the dataset root
BACKGROUND = (255, 255, 255)  # transparent pixels become white: anime crops sit on white
FILTERS = {
    "lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC, "hamming": Image.Resampling.HAMMING,
    "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX,
}  # all anti-aliased when shrinking (Pillow widens the kernel); NEAREST is left out on purpose

# Reasons a file is dropped, as counted in the manifest and the summary table.
EMPTY, MISSING, DENIED, READ_ERROR = "empty file", "broken link or vanished", "permission denied", "read error"
NOT_IMAGE, CORRUPT, BOMB, TOO_SMALL = "not an image", "truncated or corrupt", "decompression bomb", "too small"


class ImageFile(NamedTuple):
    rel: str  # path relative to the root (str; may hold surrogates for non-UTF-8 names)
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class DecodeSpec:
    """How every file becomes a training image (part of the cache key)."""

    size: int
    crop: str = "center"  # center: the central square | resize: the whole image, squashed
    resize_filter: str = "lanczos"
    min_size: int = 0  # drop images whose short side (before resizing) is below this
    content_hash: bool = True  # return a hash of the file bytes (exact-duplicate removal)
    perceptual_hash: bool = False  # return a 64-bit dHash of the cropped image (near-duplicates)


class Decoded(NamedTuple):
    image: Optional[np.ndarray]  # uint8 [3, size, size], or None when dropped
    reason: str  # why it was dropped ("" when kept)
    notes: Tuple[str, ...]  # conversions applied to a kept image, e.g. ("grayscale",)
    content_hash: bytes
    dhash: int


def list_images(root: str, exclude: Iterable[str] = ()) -> Tuple[List[ImageFile], int]:
    """(image files below `root` sorted by relative path, number of other files ignored).

    Hidden files and folders (the .animegan-cache, .git, macOS "._x.jpg" resource forks)
    and __MACOSX folders from zips are skipped, as are the folders in `exclude`. Symlinks
    to files are listed even when broken, so that they are counted as dropped rather than
    silently missing; symlinked folders are not followed (no cycles).
    """
    skip = {os.path.realpath(p) for p in exclude}
    found: List[ImageFile] = []
    ignored = 0
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel_dir)))
        except OSError as exc:
            if not rel_dir:
                raise AnimeganError(f"cannot list the dataset folder {root}: {exc.strerror}") from None
            ignored += 1  # an unreadable subfolder: its files cannot be counted one by one
            continue
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name)
            hidden = entry.name.startswith(".") or entry.name == "__MACOSX"
            if entry.is_dir(follow_symlinks=False):
                if not hidden and os.path.realpath(entry.path) not in skip:
                    stack.append(rel)
            elif hidden or os.path.splitext(entry.name)[1].lower() not in EXTENSIONS:
                ignored += 1
            elif entry.is_file() or entry.is_symlink():
                st = _stat(entry)
                if st is None:
                    ignored += 1  # vanished while listing
                else:
                    found.append(ImageFile(rel, st.st_size, st.st_mtime_ns))
    found.sort(key=lambda f: os.fsencode(f.rel))  # byte order: stable for any file name
    return found, ignored


def _stat(entry: os.DirEntry) -> Optional[os.stat_result]:
    for follow in (True, False):  # a broken link has no target, but its own stat identifies it
        try:
            return entry.stat(follow_symlinks=follow)
        except OSError:
            pass
    return None


def is_archive(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(ARCHIVES)


def check_root(root: str, name: str, source: str) -> str:
    """The absolute dataset folder (or archive file), or one clear error naming the preset
    and how to get it."""
    path = os.path.abspath(os.path.expanduser(root))
    how = source or "pass dataset.root=/path/to/images"
    if is_archive(path):
        if not os.access(path, os.R_OK):
            raise AnimeganError(f"dataset '{name}': archive {path} is not readable")
        return path
    if os.path.isfile(path):
        raise AnimeganError(f"dataset '{name}': {path} is a file, not a folder of images or an archive "
                            f"({', '.join(ARCHIVES)}); {how}")
    if not os.path.isdir(path):
        raise AnimeganError(f"dataset '{name}': folder not found: {path}; {how}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise AnimeganError(f"dataset '{name}': folder {path} is not readable")
    return path


def decode_file(path: str, spec: DecodeSpec) -> Decoded:
    """Read and convert one file; never raises for a bad file."""
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        return _dropped(MISSING)
    except PermissionError:
        return _dropped(DENIED)
    except OSError:
        return _dropped(READ_ERROR)
    return decode_bytes(data, spec)


def decode_bytes(data: Union[bytes, str], spec: DecodeSpec) -> Decoded:
    """Convert one file's bytes (or the reason they could not be read); never raises."""
    if isinstance(data, str):
        return _dropped(data)
    if not data:
        return _dropped(EMPTY)
    digest = hashlib.blake2b(data, digest_size=16).digest() if spec.content_hash else b""
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; both are skipped.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if min(im.size) < spec.min_size:
                    return _dropped(TOO_SMALL)
                notes = _notes(im, spec.size)
                if im.format == "JPEG":
                    im.draft(im.mode, (spec.size, spec.size))  # DCT-domain downscale, never below size
                im.load()
                rgb = _to_rgb(im)
                box = _crop_box(rgb.size, spec.crop)
                # reducing_gap: shrink by an integer factor with a box filter first, then apply
                # the filter; indistinguishable from a plain resize, and faster on large images.
                out = rgb.resize((spec.size, spec.size), FILTERS[spec.resize_filter], box=box, reducing_gap=3.0)
                # Hash the crop before the final resize: near-duplicate decisions then barely
                # depend on the training size (a 16 px image keeps too little detail).
                dhash = _dhash(rgb, box) if spec.perceptual_hash else 0
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _dropped(BOMB)
    except UnidentifiedImageError:
        return _dropped(NOT_IMAGE)
    except Exception:  # truncated data, bad chunks, codec errors: Pillow raises many types
        return _dropped(CORRUPT)
    arr = np.asarray(out, dtype=np.uint8)
    return Decoded(np.ascontiguousarray(arr.transpose(2, 0, 1)), "", notes, digest, dhash)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:  # one read: the bytes serve both the hash and the decoder
        return f.read()


def _dropped(reason: str) -> Decoded:
    return Decoded(None, reason, (), b"", 0)


def _notes(im: Image.Image, size: int) -> Tuple[str, ...]:
    notes = []
    if getattr(im, "n_frames", 1) > 1:
        notes.append("animated (first frame)")  # Image.open stands on frame 0
    mode = im.mode
    if _has_alpha(im):
        notes.append("alpha composited")
    if mode in ("P", "PA"):
        notes.append("palette")
    elif mode.startswith("I") or mode == "F":
        notes.append("16-bit")
    elif mode in ("L", "LA", "1"):
        notes.append("grayscale")
    elif mode == "CMYK":
        notes.append("CMYK")
    if min(im.size) < size:
        notes.append("upscaled")
    return tuple(notes)


def _has_alpha(im: Image.Image) -> bool:
    # An alpha band, or a transparent colour key (palette and RGB PNGs, GIFs).
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        # 16-bit (or 32-bit) grayscale: a plain convert("L") clips at 255 and gives white
        # garbage. PNG is the only format here that yields these modes, and its samples
        # span 0..65535, so scale that range onto 0..255.
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 / 65535.0
        if mode == "F":  # float samples: either 0..1 or already 0..255
            scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if _has_alpha(im):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im if mode == "RGB" else im.convert("RGB")


def _crop_box(size: Tuple[int, int], crop: str) -> Tuple[int, int, int, int]:
    """The region that becomes the training image: the central square, or everything.
    Cropping before resizing also means a long thin strip is never enlarged whole."""
    w, h = size
    if crop != "center":
        return (0, 0, w, h)
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return (left, top, left + side, top + side)


def _dhash(im: Image.Image, box: Tuple[int, int, int, int]) -> int:
    """64-bit difference hash: one bit per cell of an 8x8 grid, set when its right neighbour is brighter."""
    small = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BOX, box=box), dtype=np.int16)
    bits = np.packbits(small[:, 1:] > small[:, :-1])
    return int.from_bytes(bits.tobytes(), "big")
