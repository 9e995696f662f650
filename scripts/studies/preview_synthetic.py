"""Render a grid of the built-in synthetic anime faces and report rendering speed.

    python scripts/studies/preview_synthetic.py --n 64 --size 64 --out docs/synthetic_grid.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

try:
    from animegan.artefacts import tile_images
    from animegan.data.synthetic import render_faces
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from animegan.artefacts import tile_images
    from animegan.data.synthetic import render_faces


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="number of faces in the grid")
    parser.add_argument("--size", type=int, default=64, help="face size in pixels (>= 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nrow", type=int, default=8, help="faces per grid row")
    parser.add_argument("--workers", type=int, default=0, help="0 = automatic")
    parser.add_argument("--out", type=Path, default=Path("docs/synthetic_grid.png"))
    parser.add_argument("--bench", type=int, default=2000,
                        help="also time rendering this many faces (0 to skip)")
    args = parser.parse_args(argv)

    faces = render_faces(args.n, args.size, seed=args.seed, workers=args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tile_images(faces, args.nrow)).save(args.out)  # the layout of the training grids
    print(f"saved {args.n} faces of {args.size}px to {args.out}")

    if args.bench > 0:
        start = time.perf_counter()
        render_faces(args.bench, args.size, seed=args.seed + 1, workers=args.workers)
        elapsed = time.perf_counter() - start
        print(f"rendered {args.bench} faces at {args.size}px in {elapsed:.2f}s: "
              f"{args.bench / elapsed:.0f} faces/s (workers={args.workers or 'auto'})")


if __name__ == "__main__":
    main()
