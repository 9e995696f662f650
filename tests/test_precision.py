"""What `precision: auto` picks on each kind of hardware, fp16 loss scaling, and the dtype
mixes autocast makes (fakes in bf16/fp16, real images in fp32)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from animegan import precision as precision_module
from animegan.losses import gradient_penalty, r1_penalty
from animegan.models import Discriminator
from animegan.precision import LossScaling, resolve_precision
from animegan.launch import train_config
from conftest import load_state, tiny_conf
from test_training import _rows


@pytest.mark.parametrize("capability,expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"),
                                                  ((7, 0), "fp16"), ((6, 1), "fp32")])
def test_auto_on_cuda_picks_bf16_only_with_native_support(monkeypatch, capability, expected):
    # T4 (7.5) and V100 (7.0) report torch.cuda.is_bf16_supported() == True, yet emulate bf16.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda")) == expected


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_the_cpu_flags(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", torch.device("cpu")) == expected


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_is_kept_on_any_device(monkeypatch, name):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision(name, torch.device("cpu")) == name


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx512f avx512_vnni", False), ("fpu avx512f avx512_bf16", True),
                            ("fpu amx_bf16 amx_tile", True)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor : 0\nflags : {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(cpuinfo if p == "/proc/cpuinfo" else p, *a, **k))
        assert precision_module.cpu_has_native_bf16() is expected
        monkeypatch.setattr(builtins, "open", real_open)


def test_loss_scaling_skips_an_overflowing_step_counts_it_and_lowers_the_scale():
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    scaling = LossScaling(torch.device("cpu"), enabled=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scale0 = float(scaling.grad_scale("D"))

    x = torch.ones(2, 4)
    scaling.step("D", model(x).sum() * 1e34, opt)  # x scale 65536: the scaled gradients overflow fp32
    assert scaling.skipped() == {"D": 1, "G": 0}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the step was skipped
    assert float(scaling.grad_scale("D")) == scale0 / 2

    opt.zero_grad()
    scaling.step("D", model(x).sum(), opt)
    assert scaling.skipped() == {"D": 1, "G": 0}
    assert not torch.equal(model.weight, before["weight"])

    restored = LossScaling(torch.device("cpu"), enabled=True)
    restored.load_state_dict(scaling.state_dict())
    assert restored.skipped() == {"D": 1, "G": 0} and float(restored.grad_scale("D")) == scale0 / 2


def test_disabled_loss_scaling_is_a_plain_backward_and_step():
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    scaling = LossScaling(torch.device("cpu"), enabled=False)
    model(torch.ones(1, 4)).sum().backward()
    expected = model.weight.detach() - 0.5 * model.weight.grad
    opt.zero_grad()
    scaling.step("G", model(torch.ones(1, 4)).sum(), opt)
    assert torch.allclose(model.weight, expected) and scaling.grad_scale("G") is None
    assert scaling.state_dict() == {}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gradient_penalty_takes_low_precision_fakes_and_fp32_reals(dtype):
    d = Discriminator(ndf=8, image_size=32, batchnorm=False)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.autocast("cpu", dtype=dtype):
        fake = torch.tanh(torch.randn(4, 3, 32, 32)).to(dtype)  # what G gives under autocast
        penalty = gradient_penalty(d, real, fake, torch.Generator().manual_seed(0))
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty)
    fp32 = gradient_penalty(d, real, fake.float(), torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(fp32.item(), rel=0.1)


def test_scaled_penalties_equal_the_unscaled_ones():
    d = Discriminator(ndf=8, image_size=32, batchnorm=False)
    real = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    fake = torch.rand(4, 3, 32, 32) * 2 - 1
    scale = torch.tensor(65536.0)
    logits = d(real)
    assert torch.allclose(r1_penalty(logits, real, scale), r1_penalty(logits, real), rtol=1e-5)
    gp = [gradient_penalty(d, real, fake, torch.Generator().manual_seed(1), s) for s in (None, scale)]
    assert torch.allclose(gp[0], gp[1], rtol=1e-5)


def test_fp16_epoch_line_counts_skipped_steps(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="animegan")
    train_config(tiny_conf("model=dcgan32", "dataset.num_images=32", "output.sample_every=0",
                           "train.precision=fp16"), tmp_path, show_progress=False)
    lines = [r.getMessage() for r in caplog.records if "epoch 1/1 done" in r.getMessage()]
    assert len(lines) == 1
    shown = re.search(r"fp16 steps skipped \(inf/NaN gradients\) so far: D (\d+), G (\d+)", lines[0])
    skipped = load_state(tmp_path / "checkpoints" / "last.pt")["loss_scaling"]["skipped"]
    assert shown and [int(shown[1]), int(shown[2])] == [int(v) for v in skipped]  # the counts the scaler kept
    assert int(skipped[0]) >= 1  # at the first steps the scale 65536 overflows: there is something to count


@pytest.mark.slow
@pytest.mark.parametrize("penalty", [["loss.r1_gamma=1", "loss.penalty_every=1"], ["loss=wgan_gp", "train.d_steps=1"]])
def test_fp16_gradient_penalty_skips_an_overflowing_step_instead_of_stopping(tmp_path, penalty):
    """At the first steps the loss scale (65536) makes the penalty's scaled input gradient
    overflow in fp16: that step is skipped and the scale lowered, as for any overflow; the
    run goes on with finite losses instead of stopping as diverged."""
    train_config(tiny_conf("model=dcgan32", "dataset.num_images=32", "epochs=3", "output.sample_every=0",
                           "train.log_every=1", "train.precision=fp16", *penalty), tmp_path, show_progress=False)
    rows = _rows(tmp_path)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss_D", "loss_G"))
    state = load_state(tmp_path / "checkpoints" / "last.pt")
    assert state["loss_scaling"]["skipped"][0] >= 1  # D's scaler skipped the overflow
    assert state["loss_scaling"]["scalers"]["D"]["scale"] < 65536.0
