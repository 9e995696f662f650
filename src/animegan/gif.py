"""Animated GIFs with Pillow: the timelapse of a run's sample grids, latent walks."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from PIL import Image

from animegan.files import RUN_DIR_REMEDY, atomic_replace


def save_gif(frames: Sequence[Image.Image], path: Path, frame_ms: int = 100, last_frame_ms: int = 0,
             remedy: str = RUN_DIR_REMEDY) -> None:
    """Write frames as a looping GIF (atomically). `last_frame_ms` holds the last frame longer."""
    frames = [f.convert("RGB") for f in frames]
    if not frames:
        raise ValueError("no frames")
    durations = [frame_ms] * len(frames)
    if last_frame_ms:
        durations[-1] = last_frame_ms
    # One adaptive palette per frame; no dithering keeps flat anime colours flat.
    quantized = [f.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for f in frames]
    with atomic_replace(Path(path), remedy=remedy) as tmp:
        quantized[0].save(tmp, format="GIF", save_all=True, append_images=quantized[1:], duration=durations, loop=0,
                          optimize=False, disposal=1)


def write_timelapse(samples_dir: Path, out_name: str = "timelapse.gif", frame_ms: int = 300) -> Path:
    """samples/timelapse.gif from samples/epoch_*.png (and final.png) in order; the last frame stays 2 s."""
    samples_dir = Path(samples_dir)
    paths: List[Path] = sorted(samples_dir.glob("epoch_*.png"))
    if (samples_dir / "final.png").is_file():
        paths.append(samples_dir / "final.png")
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(im.convert("RGB"))
    if not frames:
        raise ValueError(f"no sample grids in {samples_dir}")
    size = frames[-1].size
    frames = [f if f.size == size else f.resize(size) for f in frames]
    out = samples_dir / out_name
    save_gif(frames, out, frame_ms=frame_ms, last_frame_ms=2000)
    return out

