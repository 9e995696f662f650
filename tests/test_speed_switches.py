"""Every speed switch trains with the same shapes and finite losses, and the fast paths
compute the same thing as the plain fp32 NCHW path (within each precision's tolerance)."""

from __future__ import annotations

import pytest
import torch

from animegan.losses import build_loss
from animegan.optimizers import build_optimizers
from animegan.precision import LossScaling
from animegan.run import build_models, speed_settings
from animegan.step import StepParts
from conftest import run_steps, tiny_conf


def watch_convolutions(*networks):
    """The (dtype, layout) of every convolution's output while the networks run: what the
    precision and memory-format switches actually did (a switch that is silently ignored
    still trains, and within bf16's tolerance even matches)."""
    seen = set()

    def note(module, inputs, output):
        layout = "NHWC" if output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous() \
            else "NCHW" if output.is_contiguous() else "other"
        seen.add((output.dtype, layout))

    for net in networks:
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and module.out_channels > 1:
                module.register_forward_hook(note)
    return seen


def _train_steps(autocast_dtype, channels_last, steps=3):
    """Metrics rows and final generator weights of a few steps from a fixed seed, and the
    (dtype, layout) of the convolutions' outputs during the steps."""
    conf = tiny_conf()
    device = torch.device("cpu")
    torch.manual_seed(0)
    generator, discriminator = build_models(conf.model, device, channels_last)
    seen = watch_convolutions(generator, discriminator)
    opt_g, opt_d = build_optimizers(conf.optimizer, generator, discriminator)
    images = torch.randint(0, 256, (16 * steps, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    parts = StepParts(generator, discriminator, opt_g, opt_d, build_loss("bce"), LossScaling(device, enabled=False),
                      torch.Generator().manual_seed(2), nz=conf.model.nz, autocast_dtype=autocast_dtype)
    metrics = run_steps(parts, images, 16, channels_last)
    during_steps = set(seen)
    with torch.no_grad():
        generator.eval()
        out = generator(torch.randn(4, conf.model.nz, generator=torch.Generator().manual_seed(3)))
    return metrics, out, during_steps


@pytest.fixture(scope="module")
def plain():
    return _train_steps(None, False)


@pytest.mark.parametrize("dtype,channels_last", [(None, True), (torch.bfloat16, False), (torch.bfloat16, True)])
def test_fast_paths_match_the_plain_path(plain, dtype, channels_last):
    rows, out, convolutions = _train_steps(dtype, channels_last)
    plain_rows, plain_out, plain_convolutions = plain
    assert plain_convolutions == {(torch.float32, "NCHW")}
    assert convolutions == {(dtype or torch.float32, "NHWC" if channels_last else "NCHW")}  # the switches took effect
    assert rows.shape == plain_rows.shape and out.shape == plain_out.shape == (4, 3, 64, 64)
    assert torch.isfinite(rows).all() and torch.isfinite(out).all()
    # fp32 NHWC reorders sums only; bf16 keeps 8 bits of mantissa in the convolutions.
    tol = 2e-3 if dtype is None else 5e-2
    losses, plain_losses = rows[:, :2], plain_rows[:, :2]
    assert torch.allclose(losses, plain_losses, rtol=tol, atol=tol), (losses, plain_losses)
    assert (out - plain_out).abs().max() < (1e-3 if dtype is None else 0.1)


def test_speed_settings_follow_the_config(monkeypatch):
    from animegan import precision

    cpu = torch.device("cpu")
    assert speed_settings(tiny_conf("train.precision=fp32", "train.channels_last=false"), cpu) == ("fp32", False)
    assert speed_settings(tiny_conf("train.precision=bf16", "train.channels_last=true"), cpu) == ("bf16", True)
    for native, expected in ((True, "bf16"), (False, "fp32")):  # auto: NHWC, bf16 only where the CPU has it
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
        assert speed_settings(tiny_conf(), cpu) == (expected, True)


@pytest.mark.slow
def test_a_run_with_every_switch_off_and_on(tmp_path, monkeypatch):
    from animegan import run
    from animegan.launch import train_config

    def watched(*args, **kwargs):
        networks = build_models(*args, **kwargs)
        watched.seen = watch_convolutions(*networks)
        return networks

    monkeypatch.setattr(run, "build_models", watched)
    for name, switches in {"off": ["train.precision=fp32", "train.channels_last=false", "train.keep_freed_memory=false"],
                           "on": ["train.precision=bf16", "train.channels_last=true", "train.keep_freed_memory=true"]}.items():
        train_config(tiny_conf(*switches), tmp_path / name, show_progress=False)
        if name == "off":
            assert watched.seen == {(torch.float32, "NCHW")}, watched.seen
        else:  # the steps in bf16; sampling outside autocast (grids, the export) in fp32, NHWC throughout
            assert (torch.bfloat16, "NHWC") in watched.seen and {c[1] for c in watched.seen} == {"NHWC"}, watched.seen
        state = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
        assert state["step"] == 4
        assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())


@pytest.mark.slow
def test_compiled_run_matches_eager_and_writes_the_same_checkpoint_keys(tmp_path):
    from animegan.launch import train_config
    from animegan.run import use_compile

    from torch._dynamo.utils import counters

    assert not use_compile(tiny_conf(), torch.device("cpu")) and use_compile(tiny_conf("train.compile=true"), None)
    graphs = {}
    for name in ("eager", "compiled"):
        counters.clear()
        train_config(tiny_conf(f"train.compile={'true' if name == 'compiled' else 'false'}", "train.precision=fp32",
                               "output.sample_every=0"), tmp_path / name, show_progress=False)
        graphs[name] = counters["stats"]["unique_graphs"]
    assert graphs["eager"] == 0 and graphs["compiled"] >= 2  # torch.compile traced G and D: the compiled code ran
    eager, compiled = (torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=True) for n in ("eager", "compiled"))
    assert compiled["generator"].keys() == eager["generator"].keys()  # no _orig_mod. prefixes: resume and sampling work
    from animegan.artefacts import MetricsLog

    losses = [torch.tensor([[float(r["loss_D"]), float(r["loss_G"])] for r in MetricsLog(tmp_path / n / "metrics.csv").read()])
              for n in ("eager", "compiled")]
    assert losses[0].shape == losses[1].shape == (4, 2)
    assert torch.allclose(losses[1], losses[0], rtol=2e-3, atol=2e-3), losses  # fused kernels reorder sums only
