"""A trained generator as an ONNX file, for onnxruntime, a web page, a phone or a game engine.

The network is the one `animegan-sample` draws with (the EMA weights of a run that kept
them, BatchNorm in eval mode, dropout off), wrapped so that the file's input is the latent
batch itself and its batch size is free:

    input   "z"       float32 [batch, nz]             (a standard normal sample; nz in the README)
    output  "images"  float32 [batch, 3, size, size]   in [-1, 1]              (default)
                      uint8   [batch, size, size, 3]   RGB, 0-255              (uint8=True)

PyTorch's TorchScript-based exporter writes it (it needs no extra package); the tests run
the file in onnxruntime and compare its faces with PyTorch's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from animegan.errors import AnimeganError
from animegan.files import atomic_replace

OPSET = 17


class LatentToImages(torch.nn.Module):
    """z [B, nz] -> the generator's images, as floats in [-1, 1] or uint8 NHWC."""

    def __init__(self, generator: torch.nn.Module, uint8: bool):
        super().__init__()
        self.generator, self.uint8 = generator, uint8

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.generator(z[:, :, None, None])
        if not self.uint8:
            return images
        return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def export_onnx(generator: torch.nn.Module, nz: int, path: Path, uint8: bool = False) -> Path:
    """Write `generator` (any device; exported from a CPU copy in eval mode) to `path` atomically."""
    import copy

    network = LatentToImages(copy.deepcopy(generator).float().cpu().eval(), uint8)
    example = torch.randn(2, nz)
    path = Path(path)
    with atomic_replace(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own future, not on this file
        try:
            torch.onnx.export(network, (example,), str(tmp), input_names=["z"], output_names=["images"],
                              dynamic_axes={"z": {0: "batch"}, "images": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
        except Exception as exc:  # an exporter without the TorchScript path, or an op it cannot write
            raise AnimeganError(f"PyTorch {torch.__version__} could not export the generator to ONNX "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return path


def describe(path: Path, nz: int, image_size: int, uint8: bool, source: str) -> str:
    """The README written beside the file: what goes in and what comes out."""
    out = (f"uint8 [batch, {image_size}, {image_size}, 3]: RGB pixels, 0-255" if uint8 else
           f"float32 [batch, 3, {image_size}, {image_size}]: RGB in [-1, 1] (pixel = (x + 1) * 127.5)")
    return f"""# {path.name}

A generator exported by animegan from `{source}` (ONNX opset {OPSET}).

- input `z`: float32 [batch, {nz}], a standard normal sample per face (any batch size)
- output `images`: {out}

    import numpy as np, onnxruntime as ort
    session = ort.InferenceSession("{path.name}")
    images = session.run(None, {{"z": np.random.default_rng(0).standard_normal((16, {nz}), dtype=np.float32)}})[0]
"""
