"""animegan-sample --interpolate / --truncation, slerp, and the run's timelapse GIF."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from animegan.cli import sample as sample_cli
from animegan.launch import train_config
from animegan.sampling import generate, interpolate, latents, slerp, truncate_
from animegan.face_generator import load_generator
from conftest import call_cli, tiny_conf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train_config(tiny_conf("epochs=3", "dataset.num_images=32"), run_dir, show_progress=False)
    return run_dir


def test_slerp_ends_at_the_keys_and_keeps_the_norm_of_orthogonal_keys():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), torch.ones(5), atol=1e-6)  # on the arc, not the chord
    assert torch.allclose(path[2], torch.tensor([2 ** -0.5, 2 ** -0.5, 0.0]), atol=1e-6)
    same = slerp(a, 2 * a, torch.tensor([0.5]))  # parallel keys: the straight line
    assert torch.allclose(same[0], 1.5 * a)


def test_truncation_redraws_large_entries_deterministically():
    z = truncate_(torch.randn(200, 100, generator=torch.Generator().manual_seed(0)), 0.7, torch.Generator().manual_seed(1))
    assert z.abs().max() <= 0.7
    a = torch.cat(list(latents(600, 100, seed=2, truncation=1.0)))
    b = torch.cat(list(latents(600, 100, seed=2, truncation=1.0)))
    assert torch.equal(a, b) and a.abs().max() <= 1.0
    plain = torch.cat(list(latents(600, 100, seed=2)))
    assert plain.abs().max() > 2.5  # untouched without it


def test_truncated_faces_do_not_depend_on_the_chunk_size(trained):
    g = load_generator(trained / "checkpoints" / "generator.pt", torch.device("cpu")).network
    a = torch.cat(list(generate(g, 300, seed=5, chunk=64, truncation=0.5)))
    b = torch.cat(list(generate(g, 300, seed=5, chunk=300, truncation=0.5)))
    assert torch.equal(a, b)


def test_interpolation_rows_start_and_end_at_the_key_faces(trained):
    g = load_generator(trained / "checkpoints" / "generator.pt", torch.device("cpu")).network
    walk = interpolate(g, keys=3, steps=4, seed=1)
    assert walk.shape == (3, 5, 3, 64, 64) and walk.dtype == torch.uint8
    keys = torch.cat(list(generate(g, 3, seed=1)))
    for i in range(3):
        assert torch.equal(walk[i, 0], keys[i]) and torch.equal(walk[i, -1], keys[(i + 1) % 3])


def test_cli_interpolate_writes_a_grid_and_a_gif(trained, tmp_path):
    out = tmp_path / "walk.png"
    result = call_cli(sample_cli.main, ["--ckpt", str(trained / "checkpoints" / "generator.pt"), "--interpolate", "4",
                                        "--n", "3", "--out", str(out), "--device", "cpu", "--truncation", "1.5"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "walk.gif" in result.stdout
    assert Image.open(out).size == (5 * 66 + 2, 3 * 66 + 2)  # 3 transitions x (4 steps + end key)
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 3 * 4 and gif.size == (64, 64) and gif.info.get("loop") == 0


def test_cli_truncation_and_bad_values(trained, tmp_path):
    ckpt = str(trained / "checkpoints" / "generator.pt")
    assert call_cli(sample_cli.main, ["--ckpt", ckpt, "--n", "4", "--truncation", "0.8", "--out", "t.png"],
                    tmp_path).returncode == 0
    assert Image.open(tmp_path / "t.png").size == (2 * 66 + 2, 2 * 66 + 2)
    for args, match in ((["--truncation", "0"], "--truncation"), (["--interpolate", "3", "--n", "1"], "--n >= 2")):
        result = call_cli(sample_cli.main, ["--ckpt", ckpt, *args], tmp_path)
        assert result.returncode == 2 and match in result.stderr and "Traceback" not in result.stderr


def test_a_run_ends_with_a_timelapse_of_its_grids(trained):
    gif = Image.open(trained / "samples" / "timelapse.gif")
    assert gif.n_frames == 3 and gif.size == Image.open(trained / "samples" / "epoch_003.png").size


def test_spectral_norm_generator_with_ema_samples_the_same_from_both_checkpoints(tmp_path):
    train_config(tiny_conf("model.g_spectral_norm=true", "model.g_dropout=0.2", "model.g_leaky_slope=0.1",
                           "train.ema=true"), tmp_path, show_progress=False)
    cpu = torch.device("cpu")
    a = torch.cat(list(generate(load_generator(tmp_path / "checkpoints" / "generator.pt", cpu).network, 6, seed=2)))
    b = torch.cat(list(generate(load_generator(tmp_path / "checkpoints" / "last.pt", cpu).network, 6, seed=2)))
    assert torch.equal(a, b) and a.float().std() > 1


def test_sampling_a_generator_in_training_uses_eval_mode_and_leaves_it_training():
    from animegan.artefacts import to_uint8
    from animegan.models import Generator

    torch.manual_seed(0)
    g = Generator(nz=8, ngf=8, image_size=16).train()
    g(torch.randn(16, 8))  # moves the BatchNorm running statistics away from their start
    before = {k: v.clone() for k, v in g.state_dict().items()}
    images = torch.cat(list(generate(g, 6, seed=3, chunk=4)))
    assert g.training  # put back as it was
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items())  # statistics untouched
    g.eval()
    with torch.no_grad():
        expected = to_uint8(g(torch.cat(list(latents(6, 8, seed=3)))))
    assert torch.equal(images, expected)  # eval mode: each image independent of its batch
