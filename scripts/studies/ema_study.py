"""Why the shipped (averaged) generator can be worse than the weights it averages: one
training run, several averages of G kept side by side, all exported at given minutes.

    python scripts/studies/ema_study.py --out study --minutes 5,15,30 -- \\
        dataset=folder dataset.root=/path/to/faces
    # then score each study/<M>min/<variant>.pt, e.g. with an FD meter

Variants, each written as an animegan generator export (animegan-sample reads it):
- `raw`: the live generator (its BatchNorm running statistics, momentum 0.1)
- `decay0.999`: the average as animegan kept it before standing statistics: fixed decay
  0.999 with the warm-up min(decay, (1+t)/(10+t)), parameters and BatchNorm statistics averaged
- `decay0.999_cal`: the same weights with BatchNorm statistics computed for them
- `kimg<K>_ramp<R>`: animegan.ema.GeneratorEMA (half-life K thousand images, ramp R),
  with its own statistics, as grids and exports use it now

The training itself is the config's (losses, stabilisers, precision), step by step with
animegan.step.gan_step; the clock stops while snapshots are written, so every variant sees
the same training minutes. Numbers only: nothing here is used by animegan-train.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

from animegan import checkpoint as ckpt
from animegan.compose import compose_config, resolve_config
from animegan.config import to_dict
from animegan.data import build_image_bank
from animegan.distributed import ProcessGroup, Ranks
from animegan.ema import GeneratorEMA, calibrate
from animegan.malloc_tuning import keep_freed_memory
from animegan.resume import data_order
from animegan.run import build_training, select_device, speed_settings
from animegan.step import gan_step


class FixedDecayEMA:
    """The average before this change: every floating tensor (BatchNorm statistics too)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.module = decay, copy.deepcopy(model).requires_grad_(False)
        pick = lambda m: [t.detach() for t in [*m.parameters(), *m.buffers()] if t.is_floating_point()]
        self._mine, self._theirs = pick(self.module), pick(model)

    @torch.no_grad()
    def update(self, step: int) -> None:
        get_ema_multi_avg_fn(min(self.decay, (1.0 + step) / (10.0 + step)))(self._mine, self._theirs, None)


class AllAverages:
    def __init__(self, averages):
        self.averages = averages

    def update(self, step: int) -> None:
        for a in self.averages:
            a.update(step)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--minutes", default="5,15,30", help="training minutes at which every variant is exported")
    p.add_argument("--ramps", default="10:0.05,40:0.05,10:0.1,10:0.02,2.5:0",
                   help="GeneratorEMA variants as half_life_kimg:rampup, comma-separated")
    p.add_argument("overrides", nargs="*", help="animegan-train config overrides")
    args = p.parse_args()
    marks = [float(m) for m in args.minutes.split(",")]

    conf = resolve_config(compose_config(args.overrides), args.overrides, os.getcwd())
    device = select_device(conf.device)
    precision, channels_last = speed_settings(conf, device)
    if device.type == "cpu" and conf.train.keep_freed_memory:
        keep_freed_memory()
    bank = build_image_bank(conf.dataset, conf.model.image_size, conf.seed).to(device)
    conf.train.ema = False  # the averages below take its place
    state, parts = build_training(conf, device, precision, channels_last, data_order(conf, None),
                                  bank.batches_per_epoch(conf.batch_size), ProcessGroup(Ranks()))
    generator = state.generator

    fixed = FixedDecayEMA(generator, 0.999)
    ramps = {}
    for spec in args.ramps.split(","):
        kimg, ramp = (float(x) for x in spec.split(":"))
        ramps[f"kimg{kimg:g}_ramp{ramp:g}"] = GeneratorEMA(generator, kimg, ramp, conf.batch_size)
    parts.ema = AllAverages([fixed, *ramps.values()])  # the GAN step updates them after each G update
    config_dict = to_dict(conf)

    def export(module, path: Path, step: int) -> None:
        ckpt.save_checkpoint(ckpt.generator_export(module, config_dict["model"], epochs=0, config=config_dict,
                                                   step=step), path)

    paused, started, log, step, epoch = 0.0, time.perf_counter(), [], 0, 0
    batch = conf.batch_size
    while marks:
        order = bank.epoch_order(conf.seed, epoch)
        for b in range(bank.batches_per_epoch(batch)):
            metrics = gan_step(parts, bank.batch(order[b * batch:(b + 1) * batch], parts.rng, channels_last), step)
            step += 1
            if step % conf.train.log_every:
                continue
            loss_d, loss_g = metrics[:2].tolist()  # a host read, as the loop's every log_every steps
            trained = time.perf_counter() - started - paused
            while marks and trained >= marks[0] * 60:
                t0 = time.perf_counter()
                minute = marks.pop(0)
                folder = args.out / f"{minute:g}min"
                folder.mkdir(parents=True, exist_ok=True)
                export(generator, folder / "raw.pt", step)
                raw_cal = copy.deepcopy(generator)
                calibrate(raw_cal, generator, batch_size=batch)
                export(raw_cal, folder / "raw_cal.pt", step)
                export(fixed.module, folder / "decay0.999.pt", step)
                fixed_cal = copy.deepcopy(fixed.module)
                calibrate(fixed_cal, generator, batch_size=batch)
                export(fixed_cal, folder / "decay0.999_cal.pt", step)
                for name, ema in ramps.items():
                    export(ema.averaged(), folder / f"{name}.pt", step)
                log.append({"minutes": minute, "step": step, "images_per_s": step * batch / trained,
                            "loss_D": loss_d, "loss_G": loss_g})
                print(json.dumps(log[-1]), flush=True)
                paused += time.perf_counter() - t0
            if not marks:
                break
        epoch += 1
    (args.out / "study.json").write_text(json.dumps({"overrides": args.overrides, "snapshots": log}, indent=1))


if __name__ == "__main__":
    main()
