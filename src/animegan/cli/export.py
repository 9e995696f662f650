"""`animegan-export`: a trained generator as an ONNX file (animegan.onnx_export).

    animegan-export --ckpt afg.pt --onnx afg.onnx            # float images in [-1, 1]
    animegan-export --ckpt generator.pt --onnx g.onnx --uint8  # uint8 RGB pixels, NHWC
"""

from __future__ import annotations

import sys
import time

from animegan.cli import OneLineParser, one_line_errors, path_argument


def parse_args(argv):
    p = OneLineParser(prog="animegan-export", description="Export a trained animegan generator to ONNX.")
    p.add_argument("--ckpt", required=True,
                   help="generator.pt or a training checkpoint (last.pt); a bare name is also looked up in ./checkpoints/")
    p.add_argument("--onnx", required=True, type=path_argument("--onnx", ".onnx"), help="the .onnx file to write")
    p.add_argument("--uint8", action="store_true", help="output uint8 RGB pixels [batch, size, size, 3] "
                                                         "instead of floats in [-1, 1] [batch, 3, size, size]")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with one_line_errors("animegan-export"):
        run(args)


def run(args) -> None:
    from animegan.face_generator import load_generator, resolve_checkpoint
    from animegan.files import atomic_replace
    from animegan.onnx_export import describe, export_onnx

    started = time.perf_counter()
    ckpt = resolve_checkpoint(args.ckpt)
    faces = load_generator(ckpt, "cpu")  # refuses a file that is not a generator, in one line
    export_onnx(faces.network, faces.nz, args.onnx, uint8=args.uint8)
    readme = args.onnx.with_name(f"{args.onnx.name}.README.md")
    with atomic_replace(readme) as tmp:
        tmp.write_text(describe(args.onnx, faces.nz, faces.image_size, args.uint8, ckpt.name))
    print(f"wrote {args.onnx} ({args.onnx.stat().st_size / 1e6:.1f} MB; input z [batch, {faces.nz}], output "
          f"{'uint8 [batch, H, W, 3]' if args.uint8 else 'float [batch, 3, H, W] in [-1, 1]'}) and {readme} "
          f"({time.perf_counter() - started:.1f}s)")
