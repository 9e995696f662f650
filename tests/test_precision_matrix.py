"""Every loss with every stabiliser, in fp32 and under bf16 autocast: a few tiny steps each
must give finite losses, move every weight, and resume exactly. bf16 autocast runs on any
CPU (emulated where the CPU lacks bf16 instructions), so the bf16 half runs everywhere,
not only where `precision: auto` happens to pick it. fp16 with loss scaling is covered
in test_precision.py."""

from __future__ import annotations

import math

import pytest
import torch

from animegan import choices
from animegan.launch import train_config
from conftest import load_state, tiny_conf
from test_training import _rows, _tensors

LOSSES = sorted(choices.LOSSES)
STABILISERS = {
    "r1": ["loss.r1_gamma=1.0"],
    "diffaugment": ["train.diffaugment=[color,translation,cutout]"],
    "spectral_norm": ["model.d_spectral_norm=true", "model.g_spectral_norm=true", "model.d_batchnorm=false"],
    "minibatch_std": ["model.minibatch_std=true"],
    "ema": ["train.ema=true", "train.ema_kimg=0.05"],
    "instance_noise": ["train.instance_noise=0.2"],
}
# 32 images of 32 px in batches of 16: two steps per epoch. WGAN-GP's five critic steps
# per batch are cut to two to keep the matrix fast; the mechanism is the same.
SMALL = ["model=dcgan32", "dataset.num_images=32", "output.sample_every=0", "train.log_every=1"]


def _conf(loss, stabiliser, precision, *more):
    extra = ["train.d_steps=2"] if loss == "wgan_gp" else []
    return tiny_conf(*SMALL, f"loss={loss}", *extra, *STABILISERS[stabiliser], f"train.precision={precision}", *more)


def _float_tensors(state, nets):
    return {f"{net}.{k}": v for net in nets for k, v in _tensors(state[net]).items() if v.is_floating_point()}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("stabiliser", sorted(STABILISERS))
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_and_stabiliser_train_and_resume_exactly(tmp_path, loss, stabiliser, precision):
    # The straight run keeps its epoch-1 state; resuming from it (a branch, in a new folder)
    # must retrace the straight run's second epoch bit for bit.
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_config(_conf(loss, stabiliser, precision, "epochs=2", "checkpoint.keep_every=1"), straight,
                 show_progress=False)
    epoch_one = straight / "checkpoints" / "epoch_001.pt"
    after_one = load_state(epoch_one)
    train_config(_conf(loss, stabiliser, precision, f"resume={epoch_one}", "epochs=2"), split, show_progress=False)

    rows = _rows(straight)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss_D", "loss_G", "D_x", "D_G_z"))

    a, b = load_state(straight / "checkpoints" / "last.pt"), load_state(split / "checkpoints" / "last.pt")
    nets = ["generator", "discriminator", "opt_g", "opt_d"] + (["generator_ema"] if stabiliser == "ema" else [])
    ta, tb = _float_tensors(a, nets), _float_tensors(b, nets)
    assert ta.keys() == tb.keys()
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"resume is not exact: {differ[:5]}"
    assert _rows(split) == rows

    # Every parameter moved in the second epoch (buffers such as spectral-norm vectors aside).
    one = _float_tensors(after_one, ["generator", "discriminator"])
    params = [k for k in one if not k.rstrip(".").endswith(("_u", "_v", "running_mean", "running_var"))]
    frozen = [k for k in params if torch.equal(one[k], ta[k])]
    assert params and not frozen, f"weights that did not move: {frozen}"
    assert all(torch.isfinite(v).all() for v in ta.values())
