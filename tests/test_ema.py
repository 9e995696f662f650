"""The EMA of G: its horizon (half-life in images, ramped), the arithmetic of an update,
BatchNorm statistics that belong to the averaged weights, and what the export holds."""

from __future__ import annotations

import pytest
import torch

import animegan.ema
from animegan.config import LoopConfig
from animegan.ema import CALIBRATION_IMAGES, GeneratorEMA, batchnorms, calibrate
from animegan.models import Generator
from animegan.launch import train_config
from animegan.face_generator import load_generator
from conftest import load_state, tiny_conf


def test_half_life_is_counted_in_images_and_ramps_with_the_images_seen():
    model = Generator(nz=4, ngf=4, image_size=16)
    ema = GeneratorEMA(model, half_life_kimg=10, rampup=0.05, batch_size=128)
    assert ema.beta_at(0) == 0.0  # nothing seen yet: the average is G
    # step 500: 64,000 images seen, half-life min(10,000, 0.05 * 64,000 = 3,200) images
    assert ema.half_life_images(500) == pytest.approx(3200)
    assert ema.beta_at(500) == pytest.approx(0.5 ** (128 / 3200))
    assert ema.beta_at(10_000) == pytest.approx(0.5 ** (128 / 10_000))  # the ramp has reached the cap
    flat = GeneratorEMA(model, half_life_kimg=1.28, rampup=0.0, batch_size=128)
    assert flat.beta_at(0) == flat.beta_at(7) == pytest.approx(0.5 ** 0.1)  # no ramp: the cap from the start
    # After one half-life of updates, a step change of G is half absorbed.
    assert flat.beta_at(0) ** 10 == pytest.approx(0.5)


def test_update_averages_parameters_and_leaves_buffers_to_calibration():
    torch.manual_seed(0)
    model = Generator(nz=4, ngf=4, image_size=16)
    ema = GeneratorEMA(model, half_life_kimg=0.064, rampup=0.0, batch_size=32)  # beta = 0.5 ** 0.5
    beta = 0.5 ** 0.5
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model(torch.randn(8, 4))  # moves the live BatchNorm statistics
    ema.update(step=3)
    now = dict(model.named_parameters())
    for name, value in ema.module.named_parameters():
        assert torch.allclose(value, beta * start[name] + (1 - beta) * now[name], atol=1e-6), name
        assert not value.requires_grad
    for name, value in ema.module.named_buffers():  # not averaged: statistics are computed for the weights
        assert torch.equal(value, start[name]), name


def _batchnorm_inputs(generator: torch.nn.Module, z: torch.Tensor):
    """Per BatchNorm layer, the (mean, var) per channel of what reaches it when G is sampled (eval mode)."""
    seen = []
    hooks = [bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach())) for bn in batchnorms(generator)]
    generator.eval()
    with torch.no_grad():
        generator(z)
    for h in hooks:
        h.remove()
    return [(x.mean((0, 2, 3)), x.var((0, 2, 3))) for x in seen]


def _assert_statistics_match(generator: torch.nn.Module, nz: int):
    z = torch.randn(2048, nz, 1, 1, generator=torch.Generator().manual_seed(99))  # not the calibration latents
    for bn, (mean, var) in zip(batchnorms(generator), _batchnorm_inputs(generator, z)):
        assert torch.allclose(bn.running_mean, mean, atol=0.05 * var.sqrt().max().item()), "running mean"
        assert ((bn.running_var / var) - 1).abs().max() < 0.15, "running variance"


def test_calibrated_statistics_are_those_of_the_averaged_weights():
    torch.manual_seed(0)
    live = Generator(nz=8, ngf=8, image_size=16)
    averaged = Generator(nz=8, ngf=8, image_size=16)
    with torch.no_grad():  # weights no network trained with: its activations are its own
        for p in averaged.parameters():
            p.mul_(3.0)
    calibrate(averaged, live, images=1024, batch_size=64)
    assert averaged.training and all(bn.momentum == 0.1 for bn in batchnorms(averaged))  # as it was
    _assert_statistics_match(averaged, 8)


@pytest.mark.slow
def test_a_run_calibrates_on_as_many_faces_as_its_config_says(tmp_path, monkeypatch):
    assert LoopConfig().ema_calibration_images == CALIBRATION_IMAGES  # the schema's default is ema.py's
    counts = []

    def counting(averaged, live, images=CALIBRATION_IMAGES, batch_size=128, **kwargs):
        counts.append((images, batch_size))
        calibrate(averaged, live, images, batch_size, **kwargs)

    monkeypatch.setattr(animegan.ema, "calibrate", counting)
    train_config(tiny_conf("train.ema_calibration_images=40"), tmp_path, show_progress=False)
    assert counts and set(counts) == {(40, 16)}  # TINY trains at batch 16


def test_calibration_leaves_every_random_stream_alone():
    live = Generator(nz=8, ngf=8, image_size=16, dropout=0.3)  # dropout draws from the global stream
    averaged = Generator(nz=8, ngf=8, image_size=16, dropout=0.3)
    torch.manual_seed(5)
    calibrate(averaged, live, images=128, batch_size=64)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))
    stats = [bn.running_mean.clone() for bn in batchnorms(averaged)]
    calibrate(averaged, live, images=128, batch_size=64)  # a function of the weights alone
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(stats, batchnorms(averaged)))


@pytest.mark.slow
def test_exported_average_has_batchnorm_statistics_of_its_own_weights(tmp_path):
    """Before standing statistics the export carried the average of the live running
    statistics, which match no network; this fails on such an export."""
    conf = tiny_conf("train.ema=true", "train.ema_kimg=0.05", "epochs=2", f"train.ema_calibration_images={CALIBRATION_IMAGES}")
    train_config(conf, tmp_path, show_progress=False)  # the default count: the tests' 64 is too few for this check
    export = tmp_path / "checkpoints" / "generator.pt"
    _assert_statistics_match(load_generator(export, torch.device("cpu")).network, nz=100)
    last = load_state(tmp_path / "checkpoints" / "last.pt")
    state = load_state(export)["state_dict"]
    assert all(torch.equal(v, last["generator_ema"][k].float()) for k, v in state.items())  # last.pt samples the same
    assert any(not torch.equal(last["generator"][k], last["generator_ema"][k])
               for k in state if k.endswith("weight"))  # the average is not the live generator


@pytest.mark.slow
def test_snapshots_at_given_minutes_hold_the_shown_generator(tmp_path):
    train_config(tiny_conf("train.ema=true", "checkpoint.snapshot_minutes=[1e-9,1e-8]",
                           f"train.ema_calibration_images={CALIBRATION_IMAGES}"), tmp_path, show_progress=False)
    first = load_state(tmp_path / "snapshots" / "generator-1e-09min.pt")
    assert first["step"] == 2 and (tmp_path / "snapshots" / "generator-1e-08min.pt").is_file()
    assert load_state(tmp_path / "checkpoints" / "generator.pt")["step"] == 4
    _assert_statistics_match(load_generator(tmp_path / "snapshots" / "generator-1e-09min.pt", torch.device("cpu")).network,
                             nz=100)
