"""`animegan-eval`: FID and KID of a trained generator against a dataset (torch-fidelity),
or the anime-domain FD32/FD64 (animegan.anime_fd).

    animegan-eval --ckpt run/checkpoints/generator.pt              # against its training data
    animegan-eval --ckpt afg.pt dataset=animefaces63k --n 50000      # another dataset, more images
    animegan-eval --ref dataset=anime36k                             # only cache the real statistics
    animegan-eval --ckpt afg.pt --metric anime-fd dataset=folder dataset.root=faces eval.seed=1

Positional arguments are config overrides, as for animegan-train (dataset=..., eval.*=...).
With a checkpoint, its own config is the base (dataset, seed, eval settings), as on resume.
"""

from __future__ import annotations

import json
import sys
import time

from animegan.anime_fd import INSTALL
from animegan.cli import OneLineParser, one_line_errors, path_argument
from animegan.config_checks import MAX_EVAL_IMAGES
from animegan.errors import AnimeganError


ANIME_FD_N, ANIME_FD_N_REAL = 2000, 5000  # the docs' protocol: generated faces, real faces (eval.n_real: another)


def parse_args(argv):
    p = OneLineParser(prog="animegan-eval", description="FID/KID of a trained animegan generator.",
                                epilog="Overrides: dataset=NAME, dataset.root=PATH, eval.inception_weights=PATH, "
                                       "eval.n_real=N, ... (see configs/train.yaml, section eval)")
    p.add_argument("--ckpt", help="generator.pt, last.pt or best.pt; a bare name is also looked up in ./checkpoints/")
    p.add_argument("--n", type=int, default=None,
                   help="generated images (default: eval.n: the checkpoint's, else 10000)")
    p.add_argument("--ref", action="store_true", help="only compute and cache the dataset's reference features")
    p.add_argument("--out", type=path_argument("--out", ".json"), default=None,
                   help="JSON file for the result and its protocol (default: beside the checkpoint)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument("--metric", choices=("fid", "anime-fd"), default="fid",
                   help="fid: FID and KID (Inception); anime-fd: FD32 and FD64 in an anime-tuned network "
                        f"(n defaults to {ANIME_FD_N}, {ANIME_FD_N_REAL} real faces; {INSTALL})")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. dataset=anime36k eval.n_real=20000")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with one_line_errors("animegan-eval"):
        run(args)


def eval_config(overrides, checkpoint_config=None):
    """The validated RunConfig an evaluation uses. With a checkpoint: its own config
    (dataset, seed, eval settings), changed only by the keys named on the command line, as
    a resume does; its model is kept whatever is named (the weights fix the image size)."""
    from animegan.compose import compose_config, with_named_overrides
    from animegan.config_checks import validate

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise AnimeganError(f"unexpected argument '{bad[0]}': overrides look like key=value (e.g. dataset=anime36k)")
    cfg = compose_config(list(overrides))
    if checkpoint_config:
        cfg = with_named_overrides(checkpoint_config, cfg, list(overrides))
        cfg.model, cfg.resume = checkpoint_config["model"], None
    return validate(cfg)


def run(args) -> None:
    started = time.perf_counter()
    if not args.ckpt and not args.ref:
        raise AnimeganError("give --ckpt PATH to evaluate a generator, or --ref to only cache a dataset's statistics")
    if args.n is not None and not 2 <= args.n <= MAX_EVAL_IMAGES:
        raise AnimeganError(f"--n must be 2 to {MAX_EVAL_IMAGES:,} (FID needs a covariance; 10000 is usual)")
    from animegan.checkpoint import load_checkpoint
    from animegan.face_generator import load_generator, resolve_checkpoint

    ckpt_path = resolve_checkpoint(args.ckpt) if args.ckpt else None
    ckpt = load_checkpoint(ckpt_path) if ckpt_path else None
    try:
        conf = eval_config(args.overrides, ckpt.get("config") if ckpt else None)
    except AnimeganError as exc:
        raise AnimeganError(f"{ckpt_path}: {exc}" if ckpt_path else str(exc)) from None

    from animegan import fidelity
    from animegan.data import build_image_bank
    from animegan.device import select_device

    if args.metric == "anime-fd":
        return run_anime_fd(args, conf, ckpt_path, started)
    device = select_device(args.device)
    if device.type == "cpu":
        from animegan.malloc_tuning import keep_freed_memory

        keep_freed_memory()  # Inception on the CPU: reused buffers instead of page faults (see benchmarks)
    generator = load_generator(ckpt_path, str(device)).network if ckpt is not None else None  # a bad file fails before any work
    extractor = fidelity.build_extractor(conf.eval, device, progress=True)  # weights first: offline fails at once
    bank = build_image_bank(conf.dataset, conf.model.image_size, conf.seed)
    reference = fidelity.reference_features(bank.images, extractor, conf.eval, conf.dataset.name)
    if ckpt is None:
        print(f"reference features ready: {reference['protocol']['n_real']} real images of '{conf.dataset.name}' at "
              f"{bank.image_size}px, {extractor.name} ({time.perf_counter() - started:.1f}s)")
        return
    n = args.n or conf.eval.n
    result = fidelity.evaluate(generator, reference, extractor, conf.eval, n)
    if "state_dict" in ckpt:  # a generator export holds whatever the run showed (the EMA with train.ema)
        weights = "export (EMA)" if ckpt.get("config", {}).get("train", {}).get("ema") else "export"
    else:
        weights = "generator_ema" if "generator_ema" in ckpt else "generator"
    record = {
        "fid": result["fid"], "kid": result["kid"], "kid_std": result["kid_std"],
        "checkpoint": str(ckpt_path.resolve()), "checkpoint_weights": weights,
        "protocol": result["protocol"], "versions": fidelity.library_versions(), "device": str(device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - started, 1),
    }
    out = args.out or ckpt_path.with_name(f"{ckpt_path.stem}-eval-n{n}.json")
    from animegan.files import atomic_replace

    with atomic_replace(out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    p = result["protocol"]
    print(f"FID {result['fid']:.3f}")
    print(f"KID {result['kid']:.5f} ± {result['kid_std']:.5f}")
    print(f"({n} generated vs {p['n_real']} real images of '{conf.dataset.name}' at {p['image_size']}px, "
          f"{extractor.name}, protocol {p['protocol_id']}; {record['seconds']:.1f}s) -> {out}")


def run_anime_fd(args, conf, ckpt_path, started: float) -> None:
    """FD32 and FD64 of the generator (or, with --ref, only the real faces' statistics, cached)."""
    import dataclasses
    import hashlib

    import numpy as np

    from animegan import anime_fd
    from animegan.data import build_image_bank
    from animegan.data.bank import images_fingerprint
    from animegan.face_generator import load_generator
    from animegan.fidelity import stats_folder
    from animegan.files import atomic_replace

    network = anime_fd.AnimeFeatures()  # a missing extra fails before any work
    faces = load_generator(ckpt_path, "cpu") if ckpt_path else None
    # The protocol's real faces: the dataset's files as they are (no duplicate removal), at
    # 64 px with a bicubic filter (the meter's own resize, whatever the dataset trains with),
    # a fixed random subset (numpy, seed 0, of the files in path order). Their cache lives
    # with the statistics: the training cache beside the data stays as it is.
    meter_data = dataclasses.replace(conf.dataset, resize_filter="bicubic", dedupe=False, near_dedupe=False,
                                     cache_dir=str(stats_folder(conf.eval) / "anime-fd-faces"))
    bank = build_image_bank(meter_data, 64, conf.seed)
    n_real = min(conf.eval.n_real or ANIME_FD_N_REAL, len(bank))
    real = bank.images[np.sort(np.random.default_rng(0).choice(len(bank), n_real, replace=False))]
    protocol = {"dataset": conf.dataset.name, "dataset_fingerprint": images_fingerprint(bank.images),
                "n_real": len(real), "network": anime_fd.NETWORK}
    key = hashlib.sha256(repr(sorted(protocol.items())).encode()).hexdigest()[:16]
    cached = stats_folder(conf.eval) / f"anime-fd-64px-n{len(real)}-{key}.npz"
    try:
        with np.load(cached) as z:
            reference = {k: {"mean": z[f"{k}_mean"], "cov": z[f"{k}_cov"]} for k in ("fd32", "fd64")}
    except (OSError, KeyError, ValueError):
        reference = anime_fd.statistics(real.numpy(), network)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_replace(cached) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{f"{k}_{part}": v[part] for k, v in reference.items() for part in ("mean", "cov")})
    if faces is None:
        print(f"reference statistics ready: {len(real)} real faces of '{conf.dataset.name}' -> {cached}")
        return
    n = args.n or ANIME_FD_N
    generated = np.concatenate([b.numpy() for b in faces.batches(n, seed=conf.eval.seed)])
    result = anime_fd.distances(anime_fd.statistics(generated, network), reference)
    record = {**result, "checkpoint": str(ckpt_path.resolve()), "n": n, "seed": conf.eval.seed, "protocol": protocol,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - started, 1)}
    out = args.out or ckpt_path.with_name(f"{ckpt_path.stem}-anime-fd-n{n}-seed{conf.eval.seed}.json")
    with atomic_replace(out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    print(f"FD32 {result['fd32']:.2f}  FD64 {result['fd64']:.2f}  ({n} generated faces, seed {conf.eval.seed}, vs "
          f"{len(real)} real faces of '{conf.dataset.name}' at 64px; {anime_fd.NETWORK}; "
          f"{record['seconds']:.1f}s) -> {out}")
