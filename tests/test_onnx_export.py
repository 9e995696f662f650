"""animegan-export: the generator as ONNX; onnxruntime draws the faces PyTorch draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animegan.cli import export as export_cli
from animegan.config import ModelConfig
from animegan.launch import train_config
from animegan.models import build_pair
from animegan.onnx_export import export_onnx
from conftest import call_cli, tiny_conf

ort = pytest.importorskip("onnxruntime", reason="onnxruntime comes with the dev extra")


def _run(path, z: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"z": z})[0]


@pytest.mark.parametrize("size,dropout", [(32, 0.0), (64, 0.0), (128, 0.0), (64, 0.3)],
                         ids=["dcgan32", "dcgan64", "dcgan128", "dcgan64-dropout"])
def test_onnxruntime_draws_the_faces_pytorch_draws(tmp_path, size, dropout):
    torch.manual_seed(0)
    generator, _ = build_pair(ModelConfig(image_size=size, ngf=8, ndf=8, g_dropout=dropout))
    for m in generator.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    generator.train()  # as a training run leaves it: the export must switch to eval itself
    path = export_onnx(generator, 100, tmp_path / "g.onnx")
    assert generator.training  # the caller's network is untouched
    z = np.random.default_rng(1).standard_normal((5, 100), dtype=np.float32)  # another batch size than exported
    with torch.no_grad():
        expected = generator.eval()(torch.from_numpy(z)[:, :, None, None]).numpy()
    got = _run(path, z)
    assert got.shape == (5, 3, size, size) and np.abs(got - expected).max() <= 1e-3


@pytest.mark.slow
def test_the_command_exports_a_trained_generator_with_its_readme(tmp_path):
    train_config(tiny_conf("model=dcgan32", "output.sample_every=0"), tmp_path / "run", show_progress=False)
    ckpt = tmp_path / "run" / "checkpoints" / "generator.pt"
    for extra, name in (([], "g.onnx"), (["--uint8"], "g8.onnx")):
        result = call_cli(export_cli.main, ["--ckpt", str(ckpt), "--onnx", str(tmp_path / name), *extra])
        assert result.returncode == 0, result.stderr
    from animegan.face_generator import load_generator
    from animegan.sampling import latents

    faces = load_generator(ckpt, "cpu")
    z = next(latents(3, faces.nz, seed=4))
    with torch.no_grad():
        expected = faces.network(z[:, :, None, None])
    floats, pixels = _run(tmp_path / "g.onnx", z.numpy()), _run(tmp_path / "g8.onnx", z.numpy())
    assert np.abs(floats - expected.numpy()).max() <= 1e-3
    reference = expected.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 32, 32, 3)
    assert np.abs(pixels.astype(int) - reference.astype(int)).max() <= 1  # rounding at a .5 may differ
    readme = (tmp_path / "g8.onnx.README.md").read_text()
    assert "input `z`: float32 [batch, 100]" in readme and "uint8 [batch, 32, 32, 3]" in readme


def test_a_file_that_is_no_generator_is_one_line(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint")
    result = call_cli(export_cli.main, ["--ckpt", str(bad), "--onnx", str(tmp_path / "g.onnx")])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "animegan-export: error:" in result.stderr and not (tmp_path / "g.onnx").exists()
    wrong = call_cli(export_cli.main, ["--ckpt", str(bad), "--onnx", str(tmp_path / "g.png")])
    assert wrong.returncode == 2 and "--onnx must name a .onnx file" in wrong.stderr
