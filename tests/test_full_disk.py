"""A full disk, on a real file system that fills up: every write path ends in one line that
names the file, a non-zero exit, no temporary file or lock left, nothing written earlier lost.

Where the tests run as root (CI), each test mounts a size-limited tmpfs of its own. Elsewhere
the child process gets a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored), so that writes past
it fail with EFBIG as they would on a full disk: the sizes below are chosen so that each
scenario fills both kinds of "disk" at the same write. `FULL_DISK=rlimit pytest ...` tries the
second kind as root too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import BIN, TINY, image_folder

resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE needs a POSIX system")
MB = 1_000_000


class SmallDisk:
    """A folder where a file cannot grow past `size` bytes: a tmpfs of that size, or a
    plain folder whose writers run under RLIMIT_FSIZE=size."""

    def __init__(self, root: Path, size: int, kind: str):
        self.root, self.size, self.kind = root, size, kind

    def _limit(self):
        if self.kind == "RLIMIT_FSIZE":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.size, self.size))

    def run(self, command, cwd: Path, timeout: float = 300):
        env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=self._limit)

    def python(self, code: str, cwd: Path):
        """Run `code` in a child Python on this disk; its last stdout line parsed as JSON."""
        result = self.run([sys.executable, "-c", textwrap.dedent(code)], cwd)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def files(self):
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())


def _mount_tmpfs(folder: Path, size: int) -> bool:
    if os.environ.get("FULL_DISK") == "rlimit" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mounted = []

    def make(size: int) -> SmallDisk:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if _mount_tmpfs(folder, size):
            mounted.append(folder)
            return SmallDisk(folder, size, "tmpfs")
        return SmallDisk(folder, size, "RLIMIT_FSIZE")

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _faces(folder: Path, n: int) -> Path:
    return image_folder(folder, n, size=64, name="{:03d}.png")


def _one_error_line(result) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
    output = (result.stdout + result.stderr).splitlines()  # a job's error is logged ([ERROR]) on the console
    errors = [line for line in output if "[ERROR]" in line or ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    return errors[0]


@pytest.mark.slow
def test_a_cache_that_cannot_fit_is_refused_before_decoding_a_file(tmp_path, small_disk):
    disk = small_disk(1 * MB)
    faces = _faces(tmp_path / "faces", 120)  # 120 x 3 x 64 x 64 = 1.47 MB of cache
    report = disk.python(f"""
        import json
        from animegan.compose import compose_config, resolve_config
        from animegan.data import cache, folder
        from animegan.errors import AnimeganError
        decoded = []
        cache.decode_file = lambda path, spec: decoded.append(path) or folder.decode_file(path, spec)
        job = ["dataset=folder", "dataset.root={faces}", "dataset.cache_dir={disk.root}", "dataset.workers=1"]
        conf = resolve_config(compose_config(job), job, ".")
        try:
            cache.prepare(conf.dataset, 64, progress=False)
            print(json.dumps({{"error": None}}))
        except AnimeganError as exc:
            print(json.dumps({{"error": str(exc), "decoded": len(decoded)}}))
    """, tmp_path)
    assert report["decoded"] == 0, report
    room = "has 1.0 MB free" if disk.kind == "tmpfs" else "a file can have at most 1.0 MB (the file-size limit"
    assert "it needs 1.5 MB and" in report["error"] and room in report["error"], report
    assert "dataset.cache_dir=" in report["error"] and disk.files() == []  # no temporary file, no lock


@pytest.mark.slow
def test_a_first_training_on_a_folder_whose_cache_cannot_fit_is_one_line(tmp_path, small_disk):
    disk = small_disk(1 * MB)
    faces = _faces(tmp_path / "faces", 120)
    result = disk.run([str(BIN / "animegan-train"), *[a for a in TINY if not a.startswith("dataset.")],
                       "dataset=folder", f"dataset.root={faces}", f"dataset.cache_dir={disk.root}",
                       f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    line = _one_error_line(result)
    assert "cannot write" in line and "it needs 1.5 MB" in line and "dataset.cache_dir=" in line, line
    assert disk.files() == [] and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("check_first", [True, False], ids=["checked-before-writing", "write-fails"])
def test_a_checkpoint_that_does_not_fit_leaves_the_previous_one(tmp_path, small_disk, check_first):
    """Refused by the free-space check, or (the check switched off) by the write itself:
    one line either way, and the last good checkpoint loads as before."""
    disk = small_disk(1 * MB)
    report = disk.python(f"""
        import json, torch
        from pathlib import Path
        from animegan import files
        from animegan.checkpoint import GENERATOR_FORMAT, load_checkpoint, save_checkpoint
        from animegan.errors import AnimeganError
        if not {check_first}:
            files.check_free_space = lambda *args: None
        export = lambda n: {{"format": GENERATOR_FORMAT, "version": 1, "model": {{}}, "state_dict": {{"w": torch.ones(n)}}}}
        path = Path("{disk.root}") / "last.pt"
        save_checkpoint(export(100_000), path)  # 0.4 MB
        try:
            save_checkpoint(export(300_000), path)  # 1.2 MB
            error = None
        except AnimeganError as exc:
            error = str(exc)
        print(json.dumps({{"error": error, "kept": load_checkpoint(path)["state_dict"]["w"].numel()}}))
    """, tmp_path)
    error = report["error"] or ""
    if check_first:
        assert error.startswith(f"cannot write {disk.root / 'last.pt'}: it needs 1.2 MB and "), report
    else:
        assert error.startswith(f"could not write {disk.root / 'last.pt'} ("), report
        assert ("No space left on device" if disk.kind == "tmpfs" else "File too large") in error, report
        assert "1.2 MB needed" in error
    assert "the previous last.pt is unchanged; free some space" in error
    assert report["kept"] == 100_000 and disk.files() == ["last.pt"]


@pytest.mark.slow
def test_a_grid_that_does_not_fit_leaves_the_previous_grid(tmp_path, small_disk):
    disk = small_disk(1 * MB)
    report = disk.python(f"""
        import json, torch
        from pathlib import Path
        from animegan.artefacts import save_image_grid
        from animegan.errors import AnimeganError
        path = Path("{disk.root}") / "samples" / "epoch_001.png"
        save_image_grid(torch.zeros(4, 3, 64, 64), path)
        before = path.read_bytes()
        try:  # 256 faces of noise: a PNG of ~3 MB that does not compress
            save_image_grid(torch.rand(256, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1, path, 16)
            error = None
        except AnimeganError as exc:
            error = str(exc)
        print(json.dumps({{"error": error, "unchanged": path.read_bytes() == before}}))
    """, tmp_path)
    assert report["error"].startswith(f"could not write {disk.root / 'samples' / 'epoch_001.png'} ("), report
    assert "the previous epoch_001.png is unchanged" in report["error"]
    assert report["unchanged"] and disk.files() == ["samples/epoch_001.png"]


@pytest.mark.slow
def test_tensorboard_on_a_full_disk_is_one_line_and_keeps_its_events(tmp_path, small_disk):
    disk = small_disk(300_000)
    report = disk.python(f"""
        import json, types, torch
        from animegan.errors import AnimeganError
        from animegan.logger import RunLogger
        conf = types.SimpleNamespace(csv=None, tensorboard=types.SimpleNamespace(flush_secs=1))
        logger = RunLogger("{disk.root}", conf)
        error = None
        for epoch in range(200):
            try:
                logger.steps([[epoch, epoch * 1000 + i, 0.5, 0.5, 0.5, 0.5] for i in range(1000)], 10.0)
                logger.epoch_done(epoch, 200, 1.0, epoch * 1000, None)
            except AnimeganError as exc:
                error = str(exc)
                break
        logger.close(quiet=True)
        print(json.dumps({{"error": error, "epochs": epoch}}))
    """, tmp_path)
    assert report["error"].startswith(f"could not write the TensorBoard events in {disk.root / 'tensorboard'} ("), report
    assert report["error"].endswith("free some space, or log without TensorBoard (logger=csv)")
    events = list((disk.root / "tensorboard").iterdir())
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    written = EventAccumulator(str(disk.root / "tensorboard"), size_guidance={"scalars": 0})
    written.Reload()  # what was written before the disk filled stays readable: the first epochs' losses
    steps = [e.step for e in written.Scalars("loss/D")]
    assert steps[:1000] == list(range(1000)) and steps == sorted(steps), steps[:3]


@pytest.mark.slow
def test_a_training_whose_disk_fills_stops_with_one_line_and_loses_nothing(tmp_path, small_disk):
    disk = small_disk(2 * MB)  # the first last.pt (2.9 MB) cannot fit
    run = disk.root / "run"
    result = disk.run([str(BIN / "animegan-train"), *TINY, "epochs=3", "logger=csv", f"hydra.run.dir={run}"],
                      tmp_path)
    line = _one_error_line(result)
    assert f"{run / 'checkpoints' / 'last.pt'}" in line and "nothing was written" in line, line
    assert not [f for f in disk.files() if ".tmp-" in f or f.endswith(".lock")], disk.files()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,") and all(len(r.split(",")) == len(rows[0].split(",")) for r in rows)


@pytest.mark.slow
def test_metrics_csv_on_a_full_disk_is_cut_back_to_whole_rows(tmp_path, small_disk):
    disk = small_disk(200_000)
    report = disk.python(f"""
        import json
        from animegan.artefacts import MetricsLog
        from animegan.errors import AnimeganError
        log = MetricsLog("{disk.root}/metrics.csv")
        log.start()
        error = None
        for block in range(1000):
            try:
                log.append([[1, block * 100 + i, 0.123456, 1.234567, 0.5, 0.25] for i in range(100)])
            except AnimeganError as exc:
                error = str(exc)
                break
        print(json.dumps({{"error": error, "rows": len(log.read()), "blocks": block}}))
    """, tmp_path)
    assert report["error"].startswith(f"could not write {disk.root / 'metrics.csv'} ("), report
    assert "metrics.csv keeps what it held before" in report["error"]
    assert report["rows"] == report["blocks"] * 100  # every complete block, and no half row
    assert (disk.root / "metrics.csv").read_bytes().endswith(b"\n")


@pytest.mark.slow
def test_animegan_sample_on_a_full_disk_is_one_line_and_leaves_the_previous_grid(tmp_path, small_disk):
    disk = small_disk(1 * MB)
    out = disk.root / "faces.png"
    sample = [str(BIN / "animegan-sample"), "--ckpt", "afg.pt", "--out", str(out)]
    assert disk.run([*sample, "--n", "4"], tmp_path).returncode == 0
    before = out.read_bytes()
    result = disk.run([*sample, "--n", "400"], tmp_path)  # a grid of ~4 MB
    line = _one_error_line(result)
    assert line.startswith(f"animegan-sample: error: could not write {out} (") and "the previous faces.png is " \
        "unchanged; free some space or write elsewhere (--out, --save-individual)" in line, line
    assert out.read_bytes() == before and disk.files() == ["faces.png"]
