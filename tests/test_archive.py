"""A downloaded archive trains as it is: dataset.root=faces.zip (or .tar.gz) fills the same
kind of cache as the unpacked folder, with the same cleaning rules, and a broken archive is
one line. Every archive is made here from a folder the test makes."""

from __future__ import annotations

import shutil
import tarfile
import zipfile

import numpy as np
import pytest

from animegan.config import DatasetConfig
from animegan.data import cache
from animegan.data.cache import prepare
from animegan.errors import AnimeganError
from animegan.launch import train_config
from conftest import image_folder, load_state, tiny_conf

SIZE = 16


def dconf(root, **kw) -> DatasetConfig:
    return DatasetConfig(**{**dict(name="t", kind="folder", root=str(root), min_size=8, workers=1), **kw})


@pytest.fixture
def faces(tmp_path):
    """A folder as a download holds it: 8 pictures in a subfolder, a file that is no image,
    a text file, and the clutter zips carry (a hidden file, __MACOSX)."""
    root = image_folder(tmp_path / "faces" / "crops", n=8).parent
    (root / "crops" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "README.txt").write_text("anime faces")
    return root


def zip_of(folder, path, extra=()):
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(folder).as_posix())
        for name, data in extra:
            z.writestr(name, data)
    return path


def test_a_zip_fills_the_cache_with_the_images_and_summary_of_its_folder(tmp_path, faces):
    archive = zip_of(faces, tmp_path / "faces.zip", extra=[("__MACOSX/crops/._img000.png", b"x"),
                                                             ("crops/.hidden.png", b"x")])
    unpacked = prepare(dconf(faces), SIZE, progress=False, load=True)
    packed = prepare(dconf(archive), SIZE, progress=False, load=True)
    assert packed.images.shape == (8, 3, SIZE, SIZE)
    assert np.array_equal(packed.images, unpacked.images)  # the same faces in the same order
    for key in ("files", "kept", "dropped", "converted"):
        assert packed.manifest[key] == unpacked.manifest[key], key
    assert packed.manifest["dropped"] == {"not an image": 1}
    assert packed.manifest["other_files_ignored"] == unpacked.manifest["other_files_ignored"] + 2  # + the clutter
    assert packed.data_path.parent == tmp_path / ".animegan-cache" / "faces.zip"  # beside the archive, not in cwd
    again = prepare(dconf(archive), SIZE, progress=False)
    assert not again.built  # reused


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar", "w"), (".tar.xz", "w:xz")])
def test_a_tar_holds_the_same_faces(tmp_path, faces, suffix, mode):
    archive = tmp_path / f"faces{suffix}"
    with tarfile.open(archive, mode) as t:
        t.add(faces, arcname=".")  # names like ./crops/img000.png, as `tar -C faces .` writes them
    unpacked = prepare(dconf(faces), SIZE, progress=False, load=True)
    packed = prepare(dconf(archive), SIZE, progress=False, load=True)
    assert sorted(i.tobytes() for i in packed.images) == sorted(i.tobytes() for i in unpacked.images)
    assert packed.manifest["dropped"] == {"not an image": 1}


def test_a_worker_pool_reads_an_archive_like_one_process(tmp_path, faces, monkeypatch):
    archive = zip_of(faces, tmp_path / "faces.zip")
    one = prepare(dconf(archive, cache_dir=str(tmp_path / "c1")), SIZE, progress=False, load=True)
    monkeypatch.setattr(cache, "POOL_MIN_FILES", 1)
    two = prepare(dconf(archive, cache_dir=str(tmp_path / "c2"), workers=2), SIZE, progress=False, load=True)
    assert np.array_equal(one.images, two.images) and two.manifest["dropped"] == one.manifest["dropped"]


def test_a_changed_archive_rebuilds_its_cache(tmp_path, faces):
    archive = zip_of(faces, tmp_path / "faces.zip")
    assert prepare(dconf(archive), SIZE, progress=False).manifest["kept"] == 8
    (faces / "crops" / "img007.png").unlink()
    zip_of(faces, archive)  # downloaded again, one face fewer
    rebuilt = prepare(dconf(archive), SIZE, progress=False)
    assert rebuilt.built and rebuilt.manifest["kept"] == 7


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_a_truncated_archive_is_one_line(tmp_path, faces, suffix):
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".zip":
        zip_of(faces, whole)
    else:
        with tarfile.open(whole, "w:gz") as t:
            t.add(faces, arcname=".")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a download that stopped half-way
    with pytest.raises(AnimeganError) as info:
        prepare(dconf(cut), SIZE, progress=False)
    message = str(info.value)
    assert "\n" not in message and str(cut) in message and "truncated or corrupt" in message
    assert not (tmp_path / ".animegan-cache" / cut.name).exists() or not list(
        (tmp_path / ".animegan-cache" / cut.name).glob("*.json"))  # no cache that looks valid


def test_a_damaged_member_is_dropped_and_the_rest_kept(tmp_path, faces):
    archive = zip_of(faces, tmp_path / "faces.zip")
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("crops/img003.png")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's stored bytes
    data[start + 40: start + 60] = bytes(20)  # flipped on the way: its CRC no longer matches
    archive.write_bytes(bytes(data))
    prepared = prepare(dconf(archive), SIZE, progress=False)
    assert prepared.manifest["kept"] == 7
    assert prepared.manifest["dropped"] == {"not an image": 1, "truncated or corrupt": 1}


def test_a_file_that_is_no_archive_is_one_line(tmp_path):
    other = tmp_path / "faces.rar"
    other.write_bytes(b"Rar!")
    with pytest.raises(AnimeganError, match="is a file, not a folder of images or an archive .*zip"):
        prepare(dconf(other), SIZE, progress=False)


def test_training_on_a_zip_is_training_on_its_folder(tmp_path, faces):
    archive = zip_of(faces, tmp_path / "faces.zip")
    common = ["dataset=folder", "model=dcgan32", "batch_size=4", "output.sample_every=0", "dataset.workers=1"]
    train_config(tiny_conf(*common, f"dataset.root={faces}", synthetic=False), tmp_path / "a", show_progress=False)
    shutil.rmtree(faces / ".animegan-cache")
    train_config(tiny_conf(*common, f"dataset.root={archive}", synthetic=False), tmp_path / "b", show_progress=False)
    a, b = load_state(tmp_path / "a" / "checkpoints" / "last.pt"), load_state(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 2
    assert all((a["generator"][k] == b["generator"][k]).all() for k in a["generator"])  # the same faces, same batches
