"""FID/KID: the metric math against scipy and known inputs, the reference cache, the
offline weights message, animegan-eval's protocol record, and evaluation during training.

No Inception weights can be downloaded here, so most tests use a small stand-in feature
extractor registered with torch-fidelity the way the library allows
(register_feature_extractor); one test runs the real Inception-v3 code path on a weights
file the test makes (random weights: it checks plumbing, not the numbers)."""

from __future__ import annotations

import json
import logging
import pickle
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from animegan import fidelity
from animegan.artefacts import MetricsLog
from animegan.checkpoint import TRAINING_FORMAT
from animegan.cli import eval as eval_cli
from animegan.config import EvalConfig
from animegan.data.bank import images_fingerprint
from animegan.data.synthetic import render_faces
from animegan.errors import AnimeganError
from animegan.launch import train_config
from animegan.face_generator import load_generator
from conftest import STANDIN, call_cli, load_state, register_standin_extractor, run_cli, tiny_conf

@pytest.fixture
def standin(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # nothing lands in the real ~/.cache
    cls = register_standin_extractor()
    cls.calls = 0
    return cls


def eval_conf(tmp_path, **kw) -> EvalConfig:
    base = dict(feature_extractor=STANDIN, stats_dir=str(tmp_path / "stats"), kid_subset_size=32, kid_subsets=20)
    return EvalConfig(**{**base, **kw})


def extractor_for(conf):
    return fidelity.build_extractor(conf, torch.device("cpu"))


# --- the metrics -------------------------------------------------------------------------------------------------

def _scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_and_the_closed_form_on_known_gaussians():
    g = torch.Generator().manual_seed(0)
    d = 6
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = torch.randn(20000, d, generator=g, dtype=torch.float64) @ a.T  # N(0, A A^T): correlated
    mu = torch.linspace(-1, 1, d, dtype=torch.float64)
    scale = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    y = torch.randn(20000, d, generator=g, dtype=torch.float64) * scale + mu  # N(mu, diag(scale^2))
    fid = fidelity.fid_kid(x.float(), y.float(), kid_subset_size=100, kid_subsets=2)["fid"]
    assert fid == pytest.approx(_scipy_frechet(x.float().double().numpy(), y.float().double().numpy()), rel=1e-6)

    # Two diagonal Gaussians: FD = |mu1 - mu2|^2 + sum (s1 - s2)^2, estimated from 20k samples.
    z = torch.randn(20000, d, generator=g, dtype=torch.float64)
    exact = float((mu ** 2).sum() + ((scale - 1) ** 2).sum())
    assert fidelity.fid_kid(z.float(), y.float(), 100, 2)["fid"] == pytest.approx(exact, rel=0.03)


def test_identical_sets_give_zero_and_shifted_sets_give_more(tmp_path, standin):
    faces = render_faces(200, 32, seed=0)
    extractor = extractor_for(eval_conf(tmp_path))
    real = extractor([faces])
    same = fidelity.fid_kid(real, extractor([faces.clone()]), kid_subset_size=100, kid_subsets=20)
    assert abs(same["fid"]) < 1e-6  # KID's subsets differ between the sets: ~0 (unbiased), not exactly 0

    def shifted(delta):
        return extractor([(faces.int() + delta).clamp(0, 255).to(torch.uint8)])

    small = fidelity.fid_kid(shifted(20), real, 100, 20)
    large = fidelity.fid_kid(shifted(60), real, 100, 20)
    assert 0.01 < small["fid"] < large["fid"]
    assert 0 < small["kid"] < large["kid"]
    assert abs(same["kid"]) < 0.1 * small["kid"], (same, small)


def test_kid_is_the_unbiased_mmd_estimate():
    # Known inputs: with one subset holding every sample, KID is the unbiased MMD^2 with
    # the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3, written out here by hand.
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 3, generator=g), torch.randn(12, 3, generator=g) + 0.5
    k = lambda a, b: (a.double() @ b.double().T / 3 + 1) ** 3  # noqa: E731
    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    by_hand = ((kxx.sum() - kxx.diag().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
               - 2 * kxy.sum() / m ** 2).item()
    assert fidelity.fid_kid(x, y, kid_subset_size=m, kid_subsets=1)["kid"] == pytest.approx(by_hand, rel=1e-5)

    # Unbiased: two samples of one distribution average to ~0 (the biased estimate stays > 0).
    from torch_fidelity.metric_kid import mmd2

    kids, biased = [], []
    for seed in range(40):
        g = torch.Generator().manual_seed(100 + seed)
        a, b = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
        kids.append(fidelity.fid_kid(a, b, kid_subset_size=64, kid_subsets=1)["kid"])
        ka, kb, kab = (((p.double() @ q.double().T) / 8 + 1) ** 3 for p, q in ((a, a), (b, b), (a, b)))
        biased.append(mmd2(ka.numpy(), kab.numpy(), kb.numpy(), mmd_est="biased"))
    kids = np.array(kids)
    assert abs(kids.mean()) < 3 * kids.std() / np.sqrt(len(kids))
    assert np.mean(biased) > 10 * kids.std() / np.sqrt(len(kids))


# --- reference statistics cache ---------------------------------------------------------------------------------

def test_reference_features_are_cached_reused_and_invalidated(tmp_path, standin, caplog):
    faces = render_faces(80, 32, seed=0)
    conf = eval_conf(tmp_path)
    extractor = extractor_for(conf)
    first = fidelity.reference_features(faces, extractor, conf, "synthetic")
    assert standin.calls == 80 and first["features"].shape == (80, 48)
    files = list((tmp_path / "stats").glob("*.pt"))
    assert len(files) == 1

    standin.calls = 0
    again = fidelity.reference_features(faces, extractor, conf, "synthetic")
    assert standin.calls == 0 and torch.equal(again["features"], first["features"])

    changed = faces.clone()
    changed[0, 0, 0, 0] ^= 1  # one pixel of one image: another dataset
    fidelity.reference_features(changed, extractor, conf, "synthetic")
    assert standin.calls == 80
    subset = fidelity.reference_features(faces, extractor, eval_conf(tmp_path, n_real=50), "synthetic")
    assert subset["features"].shape[0] == 50 and subset["protocol"]["real_subset_seed"] == 0
    assert len(list((tmp_path / "stats").glob("*.pt"))) == 3

    # A damaged cache file, or one that would run code when unpickled, is recomputed, never trusted.
    for damage in (b"truncated", pickle.dumps({"features": print}, protocol=2)):
        files[0].write_bytes(damage)
        standin.calls = 0
        with caplog.at_level(logging.WARNING, logger="animegan.fidelity"):
            rebuilt = fidelity.reference_features(faces, extractor, conf, "synthetic")
        assert standin.calls == 80 and torch.equal(rebuilt["features"], first["features"])
        assert "ignoring the FID reference cache" in caplog.text
    assert not list((tmp_path / "stats").glob(".*tmp*"))


# --- weights: offline message, bounded timeout, safe loading ------------------------------------------------------

def test_missing_weights_with_the_network_blocked_is_one_clear_line(tmp_path, monkeypatch):
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        def blocked(*args, **kwargs):
            raise OSError("network blocked by the test")

        monkeypatch.setattr(socket.socket, "connect", blocked)
        monkeypatch.setattr(socket, "getaddrinfo", blocked)
        with pytest.raises(AnimeganError) as err:
            fidelity.build_extractor(EvalConfig(), torch.device("cpu"))
        message = str(err.value)
        wanted = tmp_path / "hub" / "checkpoints" / fidelity.INCEPTION_FILE
        assert "\n" not in message and fidelity.INCEPTION_URL in message and str(wanted) in message
        assert "eval.inception_weights=" in message and "network blocked by the test" in message
        assert not wanted.exists() and not list((tmp_path / "hub").rglob("*.partial"))
    finally:
        torch.hub.set_dir(hub_dir)


def test_a_server_that_never_answers_times_out_instead_of_hanging(tmp_path, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    monkeypatch.setattr(fidelity, "INCEPTION_URL", f"http://127.0.0.1:{server.getsockname()[1]}/w.pth")
    with pytest.raises(AnimeganError, match="could not be downloaded .*timed out"):
        fidelity._download(fidelity.INCEPTION_URL, tmp_path / "w.pth", timeout=0.5)
    assert accepted  # it did connect, and gave up waiting for an answer that never came
    assert not (tmp_path / "w.pth").exists()
    server.close()


def test_a_weights_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "weights.pth"
    bad.write_bytes(pickle.dumps({"conv.weight": Evil()}))
    with pytest.raises(AnimeganError, match="not a plain weights file"):
        fidelity.resolve_inception_weights(str(bad))
    assert not marker.exists()
    with pytest.raises(AnimeganError, match="does not exist"):
        fidelity.resolve_inception_weights(str(tmp_path / "absent.pth"))


def _random_inception_weights(path: Path) -> Path:
    """A state_dict of the right shapes (random values): real weights cannot be downloaded here."""
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    cls = inc.FeatureExtractorInceptionV3
    original_load, original_fetch = cls.load_state_dict, inc.load_state_dict_from_url
    cls.load_state_dict = lambda self, state, *a, **k: None
    inc.load_state_dict_from_url = lambda *a, **k: {}  # never reaches the network
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = cls("inception-v3-compat", ["2048"])
    finally:
        cls.load_state_dict, inc.load_state_dict_from_url = original_load, original_fetch
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_real_inception_code_path_with_a_local_weights_file(tmp_path):
    weights = _random_inception_weights(tmp_path / fidelity.INCEPTION_FILE)
    conf = EvalConfig(inception_weights=str(weights), stats_dir=str(tmp_path / "stats"), batch_size=4,
                      kid_subset_size=4, kid_subsets=2)
    extractor = fidelity.build_extractor(conf, torch.device("cpu"))
    faces = render_faces(6, 32, seed=0)
    reference = fidelity.reference_features(faces, extractor, conf, "synthetic")
    assert reference["features"].shape == (6, 2048)
    assert reference["protocol"]["weights_sha256"] == fidelity.file_sha256(weights)
    generator = load_generator_from_tiny_run(tmp_path, image_size=32)
    result = fidelity.evaluate(generator, reference, extractor, conf, n=5)
    assert np.isfinite(result["fid"]) and result["protocol"]["resize"].startswith("bilinear, TF1")


def load_generator_from_tiny_run(tmp_path: Path, image_size: int = 64):
    run = tmp_path / f"run{image_size}"
    conf = tiny_conf(f"model=dcgan{image_size}", "model.ngf=8", "model.ndf=8", "output.sample_every=0")
    return load_generator(train_config(conf, run, show_progress=False).export, torch.device("cpu")).network


# --- animegan-eval ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_animegan_eval_writes_the_protocol_json_and_one_line_per_metric(tmp_path, standin, capsys):
    export = train_config(tiny_conf("output.sample_every=0"), tmp_path / "run", show_progress=False).export
    overrides = [f"eval.feature_extractor={STANDIN}", f"eval.stats_dir={tmp_path / 'stats'}",
                 "eval.kid_subset_size=16", "eval.kid_subsets=10"]
    eval_cli.main(["--ckpt", str(export), "--n", "40", "--device", "cpu", *overrides])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FID ") and lines[1].startswith("KID ") and "±" in lines[1]
    record = json.loads((tmp_path / "run" / "checkpoints" / "generator-eval-n40.json").read_text())
    assert float(lines[0].split()[1]) == pytest.approx(record["fid"], abs=1e-3) and record["fid"] > 0
    p = record["protocol"]
    assert set(p) >= {"n_generated", "n_real", "image_size", "resize", "feature_extractor", "feature_layer",
                      "weights_sha256", "latent_seed", "dataset", "dataset_fingerprint", "kid_subsets",
                      "kid_subset_size", "protocol_id"}
    assert (p["n_generated"], p["n_real"], p["image_size"], p["dataset"]) == (40, 64, 64, "synthetic")
    faces = render_faces(64, 64, seed=0)  # the checkpoint's own dataset: 64 synthetic faces, seed 0
    assert p["dataset_fingerprint"] == images_fingerprint(faces)
    assert record["checkpoint_weights"] == "export (EMA)" and record["versions"]["torch_fidelity"]

    # The same protocol gives the same id and numbers; another n gives another id.
    eval_cli.main(["--ckpt", str(export), "--n", "40", "--out", str(tmp_path / "again.json"), *overrides])
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["protocol"]["protocol_id"] == p["protocol_id"] and again["fid"] == pytest.approx(record["fid"])
    eval_cli.main(["--ckpt", str(export), "--n", "48", "--out", str(tmp_path / "n48.json"), *overrides])
    assert json.loads((tmp_path / "n48.json").read_text())["protocol"]["protocol_id"] != p["protocol_id"]

    eval_cli.main(["--ref", "dataset.num_images=100", *overrides])
    assert "reference features ready: 100 real images" in capsys.readouterr().out


@pytest.mark.slow
def test_animegan_eval_starts_from_the_checkpoints_config_and_named_keys_win(tmp_path, standin):
    settings = [f"eval.feature_extractor={STANDIN}", f"eval.stats_dir={tmp_path / 'stats'}", "eval.n=24",
                "eval.kid_subset_size=8", "eval.kid_subsets=4"]
    export = train_config(tiny_conf("output.sample_every=0", "dataset.num_images=48", *settings), tmp_path / "run",
                          show_progress=False).export
    eval_cli.main(["--ckpt", str(export), "--out", str(tmp_path / "a.json")])  # nothing named: the run's own
    p = json.loads((tmp_path / "a.json").read_text())["protocol"]
    assert (p["n_generated"], p["n_real"], p["feature_extractor"]) == (24, 48, STANDIN)
    eval_cli.main(["--ckpt", str(export), "--out", str(tmp_path / "b.json"), "eval.n=16", "dataset.num_images=32"])
    p = json.loads((tmp_path / "b.json").read_text())["protocol"]
    assert (p["n_generated"], p["n_real"], p["image_size"]) == (16, 32, 64)


@pytest.mark.slow
def test_animegan_eval_errors_are_one_line(tmp_path):
    cases = [
        ([], "give --ckpt PATH"),
        (["--ckpt", str(tmp_path / "absent.pt")], "checkpoint not found"),
        (["--ref", "eval.inception_weights=/nowhere/w.pth"], "does not exist"),
        (["--ref", "eval.feature_extractor=nope", "eval.stats_dir=" + str(tmp_path)], "not a torch-fidelity feature"),
        (["--ref", "eval.n=1"], "config key 'eval.n' = 1 is invalid"),
        (["--ref", "eval.bogus=1"], "bogus"),
    ]
    for k, (args, expected) in enumerate(cases):  # the console script for the first, main() in this process after
        result = run_cli("animegan-eval", args, cwd=tmp_path) if k == 0 else call_cli(eval_cli.main, args, tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- during training ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_training_evaluates_keeps_best_pt_and_resume_keeps_the_tracker(tmp_path, standin):
    common = ["eval.every_n_epochs=1", f"eval.feature_extractor={STANDIN}", f"eval.stats_dir={tmp_path / 'stats'}",
              "eval.n=48", "eval.kid_subset_size=16", "eval.kid_subsets=5", "train.ema=false"]
    run = tmp_path / "run"
    train_config(tiny_conf("epochs=2", *common), run, show_progress=False)
    evals = MetricsLog(run / "metrics.csv").split()[1]
    assert [int(r["epoch"]) for r in evals] == [1, 2]
    fids = [float(r["fid"]) for r in evals]
    best = load_state(run / "checkpoints" / "best.pt")
    assert best["format"] == TRAINING_FORMAT and best["epoch"] == 1 + int(np.argmin(fids))
    last = load_state(run / "checkpoints" / "last.pt")
    assert last["fid"]["best_fid"] == pytest.approx(min(fids), abs=1e-3)
    load_generator(run / "checkpoints" / "best.pt", torch.device("cpu")).network  # animegan-sample can use it
    from PIL import Image

    assert Image.open(run / "losses.png").size == (900, 700)  # a FID panel under the losses (450 px high without)

    train_config(tiny_conf("epochs=3", f"resume={run / 'checkpoints' / 'last.pt'}", *common), run, show_progress=False)
    evals = MetricsLog(run / "metrics.csv").split()[1]
    assert [int(r["epoch"]) for r in evals] == [1, 2, 3]
    fids = [float(r["fid"]) for r in evals]
    last = load_state(run / "checkpoints" / "last.pt")
    assert last["fid"]["best_fid"] == pytest.approx(min(fids), abs=1e-3)
    assert last["fid"]["best_epoch"] == 1 + int(np.argmin(fids))


@pytest.mark.slow
def test_patience_stops_training_and_best_pt_holds_the_lowest_fid(tmp_path, standin, monkeypatch):
    scripted = iter([5.0, 3.0, 4.0, 6.0, 7.0, 8.0])

    def fake_evaluate(generator, reference, extractor, conf, n):
        return {"fid": next(scripted), "kid": 0.1, "kid_std": 0.01, "seconds": 0.0,
                "protocol": {"n_real": len(reference["features"])}}

    monkeypatch.setattr(fidelity, "evaluate", fake_evaluate)
    run = tmp_path / "run"
    train_config(tiny_conf("epochs=6", "eval.every_n_epochs=1", "eval.patience=2", f"eval.feature_extractor={STANDIN}",
                           f"eval.stats_dir={tmp_path / 'stats'}"), run, show_progress=False)
    assert [float(r["fid"]) for r in MetricsLog(run / "metrics.csv").split()[1]] == [5.0, 3.0, 4.0, 6.0]
    assert load_state(run / "checkpoints" / "last.pt")["epoch"] == 4  # stopped: 2 evaluations without a better FID
    assert load_state(run / "checkpoints" / "best.pt")["epoch"] == 2
    assert (run / "samples" / "epoch_004.png").is_file()  # stopped at an epoch's end: its grid is the final one
    assert not (run / "samples" / "final.png").exists()
    assert (run / "checkpoints" / "generator.pt").is_file()


def test_training_without_the_weights_stops_before_the_first_step(tmp_path):
    with pytest.raises(AnimeganError, match="does not exist.*eval.every_n_epochs=0"):
        train_config(tiny_conf("eval.every_n_epochs=1", f"eval.inception_weights={tmp_path / 'absent.pth'}"),
                     tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    assert not (tmp_path / "run" / "metrics.csv").exists()
