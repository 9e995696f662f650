"""`animegan-sample`: draw a grid of new faces from a trained generator, or a latent walk
between them (`--interpolate K`: a PNG grid and an animated GIF)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from animegan.cli import OneLineParser, one_line_errors, path_argument
from animegan.errors import AnimeganError
from animegan.face_generator import MAX_BATCH, MAX_GRID, MAX_SEED, MIN_TRUNCATION, shipped

MAX_IMAGES = 1_000_000  # with --save-individual: a million PNG files is already ~10 GB
OUT_REMEDY = "free some space or write elsewhere (--out, --save-individual)"


def parse_args(argv):
    p = OneLineParser(prog="animegan-sample", description="Draw new faces from a trained animegan generator.")
    p.add_argument("--ckpt", required=True,
                   help="generator.pt or a training checkpoint (last.pt); a bare name is also looked up in ./checkpoints/")
    p.add_argument("--n", type=int, default=None,
                   help="number of images (default 64); with --interpolate the number of key faces (default 8)")
    p.add_argument("--out", type=path_argument("--out", ".png"), default=None,
                   help="PNG grid to write (default: beside the checkpoint, <name>-n<N>-seed<S>.png; for a "
                        "generator shipped with animegan, in outputs/samples/)")
    p.add_argument("--seed", type=int, default=0, help="latent seed: the same seed gives the same faces")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square-ish)")
    p.add_argument("--save-individual", type=path_argument("--save-individual"), default=None, metavar="DIR", help="also save each image as DIR/000000.png ...")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument("--batch", type=int, default=256, help="images generated at a time (bounds memory)")
    p.add_argument("--truncation", type=float, default=None, metavar="T",
                   help="truncation trick: redraw latent entries with |z| > T (e.g. 1.0: less variety, fewer odd faces)")
    p.add_argument("--interpolate", type=int, default=None, metavar="K",
                   help="spherical interpolation: K steps from each of --n key faces to the next; writes a PNG grid "
                        "(one row per transition) and an animated GIF of the closed walk beside it")
    p.add_argument("--frame-ms", type=int, default=80, help="--interpolate: milliseconds per GIF frame (default 80)")
    return p.parse_args(argv)


def default_output(ckpt: Path, name: str) -> Path:
    """Where a grid goes without --out: beside the checkpoint, except for a generator shipped
    inside the installed package, whose folder is not the user's (and may be read-only)."""
    packaged = shipped(ckpt.name)
    if packaged is not None and packaged.resolve() == ckpt.resolve():
        return Path("outputs") / "samples" / name
    return ckpt.with_name(name)


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with one_line_errors("animegan-sample"):
        run(args)


def run(args) -> None:
    started = time.perf_counter()
    if args.n is None:
        args.n = 8 if args.interpolate else 64
    if not (1 <= args.n <= MAX_IMAGES and 1 <= args.batch <= MAX_BATCH and 1 <= (args.nrow or 1) <= MAX_GRID):
        raise AnimeganError(f"--n must be 1 to {MAX_IMAGES:,}, --batch 1 to {MAX_BATCH}, --nrow 1 to {MAX_GRID}")
    if not 0 <= args.seed <= MAX_SEED:
        raise AnimeganError(f"--seed must be 0 to {MAX_SEED}")
    if args.truncation is not None and not args.truncation >= MIN_TRUNCATION:  # also refuses nan
        raise AnimeganError(f"--truncation must be a number >= {MIN_TRUNCATION} (e.g. 1.0)")
    if args.interpolate is not None:
        if not (1 <= args.interpolate <= MAX_GRID and 1 <= args.frame_ms <= 60_000):
            raise AnimeganError(f"--interpolate must be 1 to {MAX_GRID} and --frame-ms 1 to 60000")
        if args.n < 2:
            raise AnimeganError("--interpolate needs --n >= 2 key faces")
        if args.n * (args.interpolate + 1) > MAX_GRID:
            raise AnimeganError(f"--n {args.n} x (--interpolate {args.interpolate} + 1) images is more than one grid "
                                f"holds ({MAX_GRID}); use fewer keys or steps")
    if args.n > MAX_GRID and not args.save_individual:
        raise AnimeganError(f"--n {args.n} is more than one grid holds ({MAX_GRID}); add --save-individual DIR "
                            f"to write every image as its own file (the grid then shows the first {MAX_GRID})")
    import numpy as np
    import torch

    from animegan.artefacts import write_png
    from animegan.face_generator import load_generator

    faces = load_generator(args.ckpt, args.device)
    ckpt = faces.source
    trunc = f"-trunc{args.truncation:g}" if args.truncation is not None else ""
    if args.interpolate is not None:
        out = args.out or default_output(ckpt, f"{ckpt.stem}-interp{args.interpolate}-n{args.n}-seed{args.seed}{trunc}.png")
        write_interpolation(faces, args, out)
        print(f"wrote {out} and {out.with_suffix('.gif')} ({args.n} keys x {args.interpolate} steps, "
              f"{time.perf_counter() - started:.2f}s)")
        return
    out = args.out or default_output(ckpt, f"{ckpt.stem}-n{args.n}-seed{args.seed}{trunc}.png")
    if args.save_individual:
        args.save_individual.mkdir(parents=True, exist_ok=True)
    chunks, done = [], 0
    for images in faces.batches(args.n, seed=args.seed, truncation=args.truncation, batch=args.batch):
        if done < MAX_GRID:
            chunks.append(images[: MAX_GRID - done])
        if args.save_individual:
            for k, image in enumerate(images):  # not fsynced one by one: a crash only means sampling again
                write_png(image.permute(1, 2, 0).numpy(), args.save_individual / f"{done + k:06d}.png",
                          OUT_REMEDY, durable=False)
        done += len(images)
    images = torch.cat(chunks)
    write_png(np.asarray(faces.grid(images, args.nrow)), out, OUT_REMEDY)
    print(f"wrote {out} ({len(images)} images, {time.perf_counter() - started:.2f}s)")
    if args.save_individual:
        print(f"wrote {args.n} images to {args.save_individual}/")


def write_interpolation(faces, args, out: Path) -> None:
    """The grid (row i: key i -> key i+1, end key included) and the GIF of the whole closed
    walk (every row without its end key, so the loop has no repeated frame)."""
    import numpy as np
    from PIL import Image

    from animegan.artefacts import write_png
    from animegan.gif import save_gif

    if args.save_individual:
        raise AnimeganError("--save-individual does not combine with --interpolate")
    walk = faces.interpolate(args.n, args.interpolate, seed=args.seed, truncation=args.truncation)
    write_png(np.asarray(faces.grid(walk, args.nrow)), out, OUT_REMEDY)
    frames = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in walk[:, :-1].flatten(0, 1)]
    save_gif(frames, out.with_suffix(".gif"), frame_ms=args.frame_ms, remedy=OUT_REMEDY)
