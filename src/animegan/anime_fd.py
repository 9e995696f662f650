"""The anime-domain Fréchet distance, FD32 and FD64: `animegan-eval --metric anime-fd`.

FID's Inception network was trained on photographs; its features barely tell a good anime
face from a smudged one. These distances are computed the way FID is (Fréchet distance
between Gaussians fitted to features of real and generated images), in the 512-d pooled
features of a ResNet-18 fine-tuned on anime images: the ONNX network that PyPI's
`anime-or-not` package ships (`pip install 'animegan[anime-fd]'`, no download at run time).

- FD64: both sides at 64 px, each image upscaled (bicubic) to the network's 224 px.
- FD32: both sides box-reduced to 32 px first: structure and colour (faces, eyes, hair)
  with pixel-level speckle averaged away. The figure the docs rank recipes by.

Protocol (the docs' numbers): n generated faces from a latent seed (the faces
`animegan-sample --seed S` draws) against a fixed random subset of the dataset's faces
(seed 0). Only numbers of equal n and equal reference compare; lower is better. A
measuring tool only: training never uses it.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np
from PIL import Image

from animegan.errors import AnimeganError

INSTALL = "pip install 'animegan[anime-fd]'"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]  # ImageNet normalisation,
STD = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]  # as the network was trained
NETWORK = "anime-or-not 0.0.7 ResNet-18, pooled 512-d features"


class AnimeFeatures:
    """The pooled features of anime-or-not's network, on the CPU (onnxruntime)."""

    def __init__(self, model_path: Optional[str] = None, threads: int = 0):
        try:
            import onnx
            import onnxruntime as ort
            if model_path is None:
                from importlib.resources import files

                model_path = str(files("anime_or_not") / "anime_or_not_model.onnx")
        except ImportError as exc:
            raise AnimeganError(f"the anime FD needs {exc.name}: {INSTALL}") from None
        model = onnx.load(model_path)
        pooled = [n for n in model.graph.node if n.op_type == "Flatten"][0].output[0]  # before the classifier
        del model.graph.output[:]
        model.graph.output.extend([onnx.helper.make_tensor_value_info(pooled, onnx.TensorProto.FLOAT, None)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray, coarse: bool, batch: int = 64) -> np.ndarray:
        """Features [N, 512] of uint8 images [N, 3, 64, 64]; `coarse`: box-reduced to 32 px first."""
        out = []
        for i in range(0, len(images), batch):
            resized = []
            for x in images[i:i + batch]:
                im = Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)))
                if coarse:
                    im = im.resize((32, 32), Image.Resampling.BOX)
                resized.append(np.asarray(im.resize((224, 224), Image.Resampling.BICUBIC)))
            x = np.stack(resized).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            out.append(self.session.run(None, {"input": (x - MEAN) / STD})[0])
        return np.concatenate(out).astype(np.float64)


def gaussian(features: np.ndarray) -> Dict[str, np.ndarray]:
    return {"mean": features.mean(0), "cov": np.cov(features, rowvar=False)}


def frechet(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> float:
    """||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), as FID computes it."""
    from scipy import linalg

    s1, s2 = a["cov"], b["cov"]
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():  # a singular product: nudge both, as FID implementations do
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps).dot(s2 + eps))
    d = a["mean"] - b["mean"]
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def statistics(images: np.ndarray, network: AnimeFeatures) -> Dict[str, Dict[str, np.ndarray]]:
    """{"fd32": gaussian, "fd64": gaussian} of uint8 images [N, 3, 64, 64]."""
    if images.shape[1:] != (3, 64, 64):
        images = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0))).resize(
            (64, 64), Image.Resampling.BICUBIC)).transpose(2, 0, 1) for x in images])
    return {"fd32": gaussian(network(images, coarse=True)), "fd64": gaussian(network(images, coarse=False))}


def distances(generated: Dict, reference: Dict) -> Dict[str, float]:
    return {k: frechet(generated[k], reference[k]) for k in ("fd32", "fd64")}
