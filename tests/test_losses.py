"""Every loss: values on known logits, gradients, and the penalties against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from animegan.errors import AnimeganError
from animegan.choices import LOSSES
from animegan.losses import build_loss, gradient_penalty, r1_penalty
from animegan.launch import train_config
from conftest import run_steps, tiny_conf


def _logits(*values):
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


def test_bce_values_and_label_smoothing():
    loss = build_loss("bce")
    real, fake = loss.discriminator(torch.zeros(4), torch.zeros(4))
    assert math.isclose(real.item(), math.log(2), rel_tol=1e-6) and math.isclose(fake.item(), math.log(2), rel_tol=1e-6)
    # Smoothed target 0.9: the minimum of the real term is the entropy of 0.9, at logit log(9).
    smooth = build_loss("bce", real_label=0.9)
    real, _ = smooth.discriminator(torch.full((3,), math.log(9)), torch.zeros(3))
    assert math.isclose(real.item(), -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)), rel_tol=1e-5)
    assert math.isclose(loss.generator(torch.zeros(2)).item(), math.log(2), rel_tol=1e-6)


def test_hinge_values():
    loss = build_loss("hinge")
    real, fake = loss.discriminator(torch.tensor([2.0, 0.0, -1.0]), torch.tensor([-2.0, 0.0, 1.0]))
    assert real.item() == pytest.approx((0 + 1 + 2) / 3) and fake.item() == pytest.approx((0 + 1 + 2) / 3)
    assert loss.generator(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_wgan_values():
    loss = build_loss("wgan_gp", gp_weight=5.0)
    real, fake = loss.discriminator(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0]))
    assert real.item() == pytest.approx(-2.0) and fake.item() == pytest.approx(-0.5)
    assert loss.generator(torch.tensor([4.0])).item() == pytest.approx(-4.0) and loss.gp_weight == 5.0


def test_lsgan_values():
    loss = build_loss("lsgan")
    real, fake = loss.discriminator(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert real.item() == pytest.approx(0.5 * (0 + 1) / 2) and fake.item() == pytest.approx(0.5 * (0 + 4) / 2)
    assert loss.generator(torch.tensor([3.0])).item() == pytest.approx(0.5 * 4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_gives_scalars_and_gradients_that_push_the_right_way(name):
    loss = build_loss(name)
    real_logits, fake_logits = _logits(0.1, -0.2, 0.3), _logits(0.2, 0.1, 0.4)  # inside every margin
    real, fake = loss.discriminator(real_logits, fake_logits)
    assert real.shape == fake.shape == ()
    (real + fake).backward()
    # Gradient descent on D's loss raises D on real images and lowers it on fakes.
    assert (real_logits.grad < 0).all() and (fake_logits.grad > 0).all()
    g_logits = _logits(0.2, 0.0, -0.1)
    loss.generator(g_logits, torch.tensor([0.1, -0.2, 0.3])).backward()  # real scores: only rpgan reads them
    assert (g_logits.grad < 0).all()  # G's loss falls as D rates its fakes higher


def test_rpgan_values_pair_each_real_with_its_fake():
    loss = build_loss("rpgan")
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    d_loss, rest = loss.discriminator(real, fake)
    softplus = lambda v: math.log1p(math.exp(v))
    assert d_loss.item() == pytest.approx((softplus(0 - 1) + softplus(2 - 0)) / 2) and rest.item() == 0
    assert loss.generator(fake, real).item() == pytest.approx((softplus(1 - 0) + softplus(0 - 2)) / 2)
    # Pairs, not batch means: swapping the fakes changes the loss, where BCE would not notice.
    assert loss.discriminator(real, fake.flip(0))[0].item() != pytest.approx(d_loss.item())
    assert loss.relativistic and not build_loss("bce").relativistic
    with pytest.raises(ValueError, match="real images"):
        loss.generator(fake)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rpgan_works_on_bf16_logits_in_fp32(dtype):
    loss = build_loss("rpgan")
    real = torch.tensor([0.5, -1.0], dtype=dtype, requires_grad=True)
    fake = torch.tensor([0.25, 1.0], dtype=dtype, requires_grad=True)
    d_loss, _ = loss.discriminator(real, fake)
    assert d_loss.dtype == torch.float32
    d_loss.backward()
    assert real.grad.dtype == dtype and (real.grad < 0).all() and (fake.grad > 0).all()


class _ConstantG(torch.nn.Module):
    """G(z) = 0 for every z (with one parameter, so that G has something to train)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z):
        return self.scale * torch.ones(z.shape[0], 3, 4, 4)


@pytest.mark.parametrize("r1,r2", [(0.0, 0.0), (2.0, 0.0), (0.0, 3.0), (2.0, 3.0)])
def test_rpgan_step_with_r1_and_r2_is_the_closed_form(r1, r2):
    """A linear D(x) = <w, x> on identical real images c and fakes 0: D's loss is
    softplus(<w, 0> - <w, c>) + (r1 + r2) / 2 * |w|^2, since grad_x D = w for real and fake alike."""
    from animegan.precision import LossScaling
    from animegan.step import StepParts

    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    d, g = _LinearD(w.clone()), _ConstantG()
    images = torch.full((8, 3, 4, 4), 191, dtype=torch.uint8)  # c = 191 * 2 / 255 - 1 everywhere
    c = 191 * 2 / 255 - 1
    parts = StepParts(g, d, torch.optim.SGD(g.parameters(), lr=0.0), torch.optim.SGD(d.parameters(), lr=0.0),
                      build_loss("rpgan"), LossScaling(torch.device("cpu"), False), torch.Generator().manual_seed(1),
                      nz=2, r1_gamma=r1, r2_gamma=r2)
    rows = run_steps(parts, images, 4, flip=False).tolist()
    softplus = lambda v: math.log1p(math.exp(v))
    expected_d = softplus(-c * w.sum().item()) + (r1 + r2) / 2 * w.pow(2).sum().item()
    expected_g = softplus(c * w.sum().item())
    for row in rows:
        assert row[0] == pytest.approx(expected_d, rel=1e-5) and row[1] == pytest.approx(expected_g, rel=1e-5)


def test_unknown_loss_is_refused():
    with pytest.raises(AnimeganError, match="available"):
        build_loss("nope")


class _LinearD(torch.nn.Module):
    """D(x) = <w, x> per sample: grad_x D = w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    d = _LinearD(w)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gp = gradient_penalty(d, real, fake, torch.Generator().manual_seed(1))
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    gp.backward()  # the penalty trains D: d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    assert torch.allclose(d.w.grad, 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-4, atol=1e-6)
    # A critic with unit-norm gradient pays nothing.
    assert gradient_penalty(_LinearD(w / w.norm()), real, fake, torch.Generator()).item() == pytest.approx(0, abs=1e-8)


def test_gradient_penalty_draws_its_mixing_from_the_given_generator():
    d = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)
    a = gradient_penalty(d, real, fake, torch.Generator().manual_seed(7))
    b = gradient_penalty(d, real, fake, torch.Generator().manual_seed(7))
    c = gradient_penalty(d, real, fake, torch.Generator().manual_seed(8))
    assert a.item() == b.item() != c.item()


def test_r1_penalty_of_a_linear_d_is_the_squared_weight_norm():
    w = torch.randn(3, 4, 4)
    d = _LinearD(w)
    x = torch.randn(5, 3, 4, 4).requires_grad_(True)
    r1 = r1_penalty(d(x), x)
    assert r1.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    r1.backward()
    assert torch.allclose(d.w.grad, 2 * w, rtol=1e-4)


@pytest.mark.parametrize("overrides", [
    ["loss=hinge"], ["loss=lsgan", "loss.real_label=0.9"], ["loss=wgan_gp", "train.d_steps=2", "model.d_batchnorm=false"],
    ["loss=bce", "loss.r1_gamma=1.0", "loss.penalty_every=2"],
    ["loss=rpgan", "model.d_batchnorm=false"], ["loss=rpgan", "loss.r1_gamma=0.5", "loss.r2_gamma=0", "loss.penalty_every=2"],
])
@pytest.mark.slow
def test_each_loss_trains_a_few_steps(tmp_path, overrides):
    train_config(tiny_conf(*overrides), tmp_path, show_progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["loss"]["name"] == overrides[0].split("=")[1]
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())


@pytest.mark.parametrize("name,acts", [("bce", True), ("lsgan", True), ("hinge", False), ("wgan_gp", False)])
def test_label_smoothing_changes_bce_and_lsgan_training_and_not_hinge_or_wgan(tmp_path, name, acts):
    """hinge and WGAN have no labels: loss.real_label (which the default synthetic run sets
    to 0.9) must compose and train, and leave their training exactly as it is."""
    opts = ["model=dcgan32", "dataset.num_images=32", "output.sample_every=0", f"loss={name}", "train.d_steps=1"]
    weights = []
    for label in ("1.0", "0.9"):
        train_config(tiny_conf(*opts, f"loss.real_label={label}"), tmp_path / label, show_progress=False)
        weights.append(torch.load(tmp_path / label / "checkpoints" / "last.pt", weights_only=True)["discriminator"])
    same = all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert same is not acts
