"""Spectral norm, EMA, DiffAugment, minibatch std, generator options, the divergence guard
and the learning-rate decay (exact resume with them on: test_resume.py)."""

from __future__ import annotations

import pytest
import torch

from animegan import augment, fidelity
from animegan.augment import DiffAugment
from animegan.errors import AnimeganError
from animegan.guard import DivergenceGuard
from animegan.losses import build_loss
from animegan.lr_schedule import LearningRateSchedule
from animegan.models import Discriminator, Generator, MinibatchStd, build_discriminator, build_generator
from animegan.optimizers import build_optimizers
from animegan.precision import LossScaling
from animegan.launch import train_config
from animegan.run import build_models
from animegan.step import StepParts
from conftest import load_state, run_steps, standin_eval, tiny_conf
from test_training import _rows, _tensors

# ---------------------------------------------------------------- spectral norm


def test_spectral_norm_bounds_every_conv_of_d_and_optionally_g():
    conf = tiny_conf("model.d_spectral_norm=true", "model.g_spectral_norm=true", "model.d_batchnorm=false").model
    d, g = build_discriminator(conf), build_generator(conf)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight")
               for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    x = torch.randn(4, 3, 64, 64)
    for _ in range(30):  # power iterations run in training forwards
        d(x)
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_spectral_norm_is_off_by_default():
    d = build_discriminator(tiny_conf().model)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in d.modules())


# ---------------------------------------------------------------- EMA


# The EMA itself (horizon, BatchNorm statistics, export) is tested in test_ema.py.


# ---------------------------------------------------------------- DiffAugment


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaugment_keeps_shape_and_lets_gradients_through(policy):
    x = torch.rand(6, 3, 32, 32).mul(2).sub(1).requires_grad_(True)
    y = DiffAugment(policy, torch.Generator().manual_seed(0))(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaugment_draws_the_same_transform_for_any_content(policy):
    """Its random parameters depend on the batch shape and the generator, never on the
    pixels: from the same generator state a real and a fake batch get the same per-image
    transforms. Each transform is affine in the image for fixed parameters, so
    A(a) + A(b) - A(0) == A(a + b) holds exactly when the parameters match."""
    a, b = torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16)

    def aug(x):
        return DiffAugment(policy, torch.Generator().manual_seed(3))(x)

    assert torch.allclose(aug(a) + aug(b) - aug(torch.zeros_like(a)), aug(a + b), atol=1e-5)
    other = DiffAugment(policy, torch.Generator().manual_seed(4))(a)
    assert not torch.allclose(other, aug(a))  # and per draw, fresh parameters


def test_translation_and_cutout_geometry():
    x = torch.ones(64, 1, 64, 64)
    rng = torch.Generator().manual_seed(0)
    zeros = (augment.cutout(x, rng) == 0).flatten(1).sum(1)
    assert zeros.max() == 32 * 32 and zeros.min() >= 16 * 16  # a 32x32 square, clipped at the border
    shifted = augment.translation(x, rng)
    blank_rows = (shifted[:, 0] == 0).all(2).sum(1)
    assert blank_rows.max() <= 8 and (shifted == 1).any()  # at most 1/8 of the size, zero padded


def test_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="available"):
        DiffAugment("color,zoom", torch.Generator())
    with pytest.raises(AnimeganError, match="train.diffaugment"):
        tiny_conf("train.diffaugment=[zoom]")


def test_the_loop_augments_every_d_input_real_and_fake_with_one_policy():
    conf = tiny_conf("train.instance_noise=0")
    torch.manual_seed(0)
    generator, discriminator = build_models(conf.model, torch.device("cpu"))
    opt_g, opt_d = build_optimizers(conf.optimizer, generator, discriminator)
    rng = torch.Generator().manual_seed(1)
    inner = DiffAugment("color,translation,cutout", rng)
    seen, fed = [], []

    def recording(x):
        seen.append(x)
        out = inner(x)
        fed.append(out)
        return out

    def d_forward(module, args):
        assert any(args[0] is f for f in fed), "D got an input that was not augmented"

    discriminator.register_forward_pre_hook(d_forward)
    images = torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8)
    parts = StepParts(generator, discriminator, opt_g, opt_d, build_loss("bce"), LossScaling(torch.device("cpu"), False),
                      rng, nz=conf.model.nz, augment=recording)
    run_steps(parts, images, 16, flip=False)
    assert len(seen) == 2 * 3  # per step: the real batch, the detached fakes (D), the fakes (G)
    reals = [x for x in seen if not x.requires_grad and x.min() >= -1 and x.max() <= 1 and x.std() > 0.5]
    assert len(reals) >= 2  # uniform noise images: the two real batches are among the inputs


# ---------------------------------------------------------------- architecture options


def test_minibatch_std_adds_one_channel_that_sees_batch_variety():
    layer = MinibatchStd()
    same = torch.ones(4, 8, 4, 4)
    varied = torch.randn(4, 8, 4, 4)
    assert layer(same).shape == (4, 9, 4, 4) and layer(same)[:, -1].abs().max() < 1e-3
    assert layer(varied)[:, -1].mean() > 0.5
    d = Discriminator(ndf=8, image_size=32, minibatch_std=True)
    assert d(torch.randn(3, 3, 32, 32)).shape == (3,)


def test_generator_dropout_and_leaky_relu():
    g = Generator(nz=16, ngf=8, image_size=32, dropout=0.25, leaky_slope=0.1)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.25 for m in g.modules())
    assert all(m.negative_slope == 0.1 for m in g.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert not any(isinstance(m, torch.nn.ReLU) for m in g.modules())
    g.eval()
    z = torch.randn(2, 16)
    assert torch.equal(g(z), g(z))  # dropout is off when sampling


# ---------------------------------------------------------------- divergence guard


def test_guard_spots_nan_and_collapse_on_logged_rows():
    guard = DivergenceGuard("warn", patience=3, d_loss=1e-3, g_loss=10.0)
    assert not guard.observe([[1, 1, 0.5, 2.0, 0.6, 0.4], [1, 2, 1e-4, 50.0, 1.0, 0.0]])
    assert not guard.diverged and guard.streak == 1
    guard.observe([[1, 3, 1e-4, 60.0, 1.0, 0.0], [1, 4, 2e-4, 80.0, 1.0, 0.0]])
    assert guard.diverged and "collapse at step 4" in guard.reason
    guard.observe([[1, 5, 0.4, 3.0, 0.6, 0.3]])  # the collapse ends: checkpoints are allowed again
    assert not guard.diverged
    for mode in ("stop", "warn", "off"):  # NaN/inf stops the run whatever the mode
        nan = DivergenceGuard(mode, patience=3)
        assert nan.observe([[1, 1, 0.5, 1.0, 0.5, 0.5], [1, 2, float("nan"), 1.0, 0.5, 0.5]]), mode
        assert nan.diverged and "NaN/inf loss at step 2" in nan.reason
        assert nan.observe([[1, 3, 0.5, 1.0, 0.5, 0.5]])  # and stays stopped
    off = DivergenceGuard("off", patience=1)
    assert not off.observe([[1, 1, 1e-4, 50.0, 1.0, 0.0], [1, 2, 1e-4, 50.0, 1.0, 0.0]]) and not off.diverged


@pytest.mark.slow
@pytest.mark.parametrize("guard", ["warn", "off", "stop"])
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint_whatever_the_guard(tmp_path, monkeypatch, guard):
    import animegan.run as run_module

    real_build = run_module.build_loss
    evaluations = []

    def poisoned(*args, **kwargs):
        loss = real_build(*args, **kwargs)
        calls = [0]
        generator_loss = loss.generator

        def generator(fake_logits, real_logits=None):
            calls[0] += 1
            value = generator_loss(fake_logits, real_logits)
            return value * float("nan") if calls[0] >= 5 else value  # step 5 blows up

        loss.generator = generator
        return loss

    monkeypatch.setattr(run_module, "build_loss", poisoned)
    monkeypatch.setattr(fidelity.TrainingEvaluator, "measure", lambda self, *a: evaluations.append(a))
    # 8 steps an epoch, NaN at step 5, read at step 8: the epoch's end, where grids, checkpoints and FID happen.
    conf = tiny_conf(f"train.guard={guard}", "dataset.num_images=128", "checkpoint.every_n_steps=4",
                     "train.log_every=4", "epochs=3", "eval.every_n_epochs=1", *standin_eval(tmp_path / "stats"))
    with pytest.raises(AnimeganError, match="diverged.*NaN/inf loss at step 5"):
        train_config(conf, tmp_path, show_progress=False)
    last = load_state(tmp_path / "checkpoints" / "last.pt")
    assert last["step"] == 4  # written before the blow-up; nothing after it
    assert all(torch.isfinite(v).all() for v in _tensors(last["generator"]).values() if v.is_floating_point())
    assert not evaluations  # no FID of a NaN network
    assert int(_rows(tmp_path)[-1]["step"]) == 8  # it stopped at the first read of the NaN, not an epoch later
    assert not (tmp_path / "checkpoints" / "generator.pt").exists()
    assert not list((tmp_path / "samples").glob("*.png"))  # no grid of a NaN network


# ---------------------------------------------------------------- learning-rate decay


def test_lr_holds_then_falls_linearly_to_its_floor():
    opt_g = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=4e-4)
    opt_d = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    schedule = LearningRateSchedule((opt_g, opt_d), total_steps=100, decay_start=0.5, decay_to=0.25)
    seen = {}
    for step in (0, 50, 75, 100, 0):
        schedule.apply(step)
        seen[step] = (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"])
    assert seen[0] == (4e-4, 2e-4) and seen[50] == (4e-4, 2e-4)  # constant up to the start, and back at step 0
    assert seen[75] == pytest.approx((2.5e-4, 1.25e-4))  # halfway down: 1 - 0.75 / 2
    assert seen[100] == pytest.approx((1e-4, 0.5e-4))  # the floor, each rate its own
    constant = LearningRateSchedule((opt_g,), total_steps=100)
    assert [constant.factor(s) for s in (0, 99, 100)] == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_resume_trains_at_a_new_lr_named_on_the_command_line(tmp_path):
    """The optimizers' saved state holds the old rate; the one named wins."""
    train_config(tiny_conf("epochs=1"), tmp_path, show_progress=False)
    resume = str(tmp_path / "checkpoints" / "last.pt")
    train_config(tiny_conf(f"resume={resume}", "epochs=2", "optimizer.lr=1e-4"), tmp_path, show_progress=False)
    state = load_state(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 8
    assert [state[o]["param_groups"][0]["lr"] for o in ("opt_g", "opt_d")] == [1e-4, 1e-4]
