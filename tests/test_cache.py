"""The preparation cache: build, reuse without decoding, invalidation, cleaning, atomicity.

Every folder is made here in tmp_path, a few dozen small images at most.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from animegan.config import DatasetConfig
from animegan.data import build_image_bank, cache, folder
from animegan.data.cache import prepare
from animegan.errors import AnimeganError
from conftest import face_picture, image_folder

SIZE = 16
pattern, make_folder = face_picture, image_folder


def dconf(root, **kw) -> DatasetConfig:
    base = dict(name="t", kind="folder", root=str(root), min_size=8, workers=1)
    return DatasetConfig(**{**base, **kw})


def cache_files(root):
    return sorted(p.name for p in (root / folder.CACHE_FOLDER).iterdir())


@pytest.fixture
def no_decoding(monkeypatch):
    """After this fixture is requested, any decode fails the test: a reuse must not decode."""

    def refuse(path, spec):
        raise AssertionError(f"decoded {path} although the cache is valid")

    return lambda: monkeypatch.setattr(cache, "decode_file", refuse)


def test_first_use_builds_then_later_uses_load_without_decoding(tmp_path, no_decoding):
    root = make_folder(tmp_path / "faces")
    first = prepare(dconf(root), SIZE, progress=False, load=True)
    assert first.built and first.images.shape == (6, 3, SIZE, SIZE) and first.images.dtype == np.uint8
    expected = folder.decode_file(str(root / "img002.png"), folder.DecodeSpec(SIZE)).image
    assert np.array_equal(first.images[2], expected)  # path order, the same pixels as a direct decode

    no_decoding()
    again = prepare(dconf(root), SIZE, progress=False, load=True)
    assert not again.built and np.array_equal(again.images, first.images)
    assert again.data_path == first.data_path


def test_cache_files_and_manifest(tmp_path):
    root = make_folder(tmp_path / "faces")
    p = prepare(dconf(root), SIZE, progress=False)
    names = cache_files(root)
    assert names == sorted(["16px.json", p.data_path.name]) and p.data_path.suffix == ".npy"  # no lock left
    m = json.loads(p.manifest_path.read_text())
    assert m["source_root"] == str(root) and m["image_size"] == SIZE and m["format"] == cache.FORMAT
    assert m["options"] == {"crop": "center", "resize_filter": "lanczos", "min_size": 8, "dedupe": True,
                            "near_dedupe": False, "near_dedupe_distance": None}
    assert m["files"] == m["kept"] == 6 and m["dropped"] == {} and len(m["fingerprint"]) == 64
    arr = np.load(p.data_path, mmap_mode="r")  # memory-mappable, exactly the kept rows
    assert arr.shape == (6, 3, SIZE, SIZE) and os.path.getsize(p.data_path) == m["data_bytes"]


def _add(root):
    (root / "sub").mkdir()
    pattern(99).save(root / "sub" / "new.png")


def _remove(root):
    (root / "img001.png").unlink()


def _modify(root):
    path = root / "img003.png"
    pattern(77).save(path)
    later = time.time() + 5
    os.utime(path, (later, later))


@pytest.mark.parametrize("change,kept", [(_add, 7), (_remove, 5), (_modify, 6)])
def test_changed_files_rebuild(tmp_path, change, kept):
    root = make_folder(tmp_path / "faces")
    before = prepare(dconf(root), SIZE, progress=False, load=True)
    change(root)
    after = prepare(dconf(root), SIZE, progress=False, load=True)
    assert after.built and after.manifest["kept"] == kept
    assert after.manifest["fingerprint"] != before.manifest["fingerprint"]
    assert not before.data_path.exists()  # the old data file is cleaned up
    assert cache_files(root) == sorted(["16px.json", after.data_path.name])
    if change is _modify:
        assert not np.array_equal(after.images[3], before.images[3])


def test_touching_a_file_rebuilds(tmp_path):
    root = make_folder(tmp_path / "faces")
    prepare(dconf(root), SIZE, progress=False)
    os.utime(root / "img000.png", (1, 1))
    assert prepare(dconf(root), SIZE, progress=False).built


@pytest.mark.parametrize("option", [
    {"crop": "resize"}, {"resize_filter": "bicubic"}, {"min_size": 50}, {"dedupe": False}, {"near_dedupe": True},
])
def test_changed_options_rebuild(tmp_path, option):
    root = make_folder(tmp_path / "faces")
    prepare(dconf(root), SIZE, progress=False)
    if "min_size" in option:
        with pytest.raises(AnimeganError, match="none of the 6 image files.*6 too small"):
            prepare(dconf(root, **option), SIZE, progress=False)
        return
    changed = prepare(dconf(root, **option), SIZE, progress=False)
    assert changed.built and changed.manifest["options"][next(iter(option))] == next(iter(option.values()))
    assert not prepare(dconf(root, **option), SIZE, progress=False).built
    assert not prepare(dconf(root, **option, flip=False, workers=2), SIZE, progress=False).built  # not in the key


def test_each_resolution_has_its_own_cache(tmp_path, no_decoding):
    root = make_folder(tmp_path / "faces")
    a = prepare(dconf(root), 16, progress=False, load=True)
    b = prepare(dconf(root), 32, progress=False, load=True)
    assert a.built and b.built and b.images.shape == (6, 3, 32, 32)
    no_decoding()
    assert not prepare(dconf(root), 16, progress=False).built
    assert not prepare(dconf(root), 32, progress=False).built


def test_exact_and_near_duplicates(tmp_path):
    root = make_folder(tmp_path / "faces", n=4)
    shutil.copy(root / "img000.png", root / "zz_copy.png")  # byte-identical
    pattern(1).save(root / "zz_resaved.jpg", quality=92)  # the same picture, re-encoded: a near-duplicate
    pattern(2, size=80).save(root / "zz_bigger.png")  # the same picture at another size: a near-duplicate
    default = prepare(dconf(root), SIZE, progress=False).manifest
    assert default["kept"] == 6 and default["dropped"] == {"duplicate": 1}
    assert default["dropped_files"] == [["zz_copy.png", "duplicate"]]
    near = prepare(dconf(root, near_dedupe=True), SIZE, progress=False).manifest
    assert near["kept"] == 4 and near["dropped"] == {"duplicate": 1, "near-duplicate": 2}
    assert prepare(dconf(root, dedupe=False), SIZE, progress=False).manifest["kept"] == 7


def test_bad_files_are_counted_by_reason_and_never_fatal(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "faces", n=3)
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("not a picture")
    data = (root / "img000.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (2, 2)).save(root / "tiny.png")
    os.symlink(root / "missing.png", root / "broken.png")
    Image.new("L", (40, 40), 50).save(root / "gray.png")
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(root / "clear.png")
    Image.new("RGB", (200, 200), (1, 2, 3)).save(root / "bomb.png")
    (root / "notes.txt").write_text("ignored: not an image extension")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    m = prepare(dconf(root), SIZE, progress=False).manifest
    assert m["files"] == 11 and m["kept"] == 5 and m["other_files_ignored"] == 1
    assert m["dropped"] == {"empty file": 1, "not an image": 1, "truncated or corrupt": 1, "too small": 1,
                            "broken link or vanished": 1, "decompression bomb": 1}
    assert m["converted"] == {"grayscale": 1, "alpha composited": 1}


def test_nothing_usable_is_one_error_and_leaves_no_cache(tmp_path):
    root = tmp_path / "junk"
    root.mkdir()
    (root / "a.jpg").write_text("nope")
    (root / "b.png").write_bytes(b"")
    with pytest.raises(AnimeganError, match=r"dataset 't': none of the 2 image files .*(1 not an image|1 empty)"):
        prepare(dconf(root), SIZE, progress=False)
    assert cache_files(root) == []


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(AnimeganError) as err:
        prepare(dconf(tmp_path / "nope", name="gochiusa", source="download it from X"), SIZE, progress=False)
    assert str(err.value) == f"dataset 'gochiusa': folder not found: {tmp_path / 'nope'}; download it from X"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(AnimeganError, match=r"no image files .* \(1 other files ignored\)"):
        prepare(dconf(tmp_path / "empty"), SIZE, progress=False)


def test_interrupted_build_leaves_no_valid_looking_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "faces")
    old = prepare(dconf(root), SIZE, progress=False)
    pattern(50).save(root / "added.png")
    calls = []

    def dies_midway(path, spec):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return folder.decode_file(path, spec)

    monkeypatch.setattr(cache, "decode_file", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare(dconf(root), SIZE, progress=False)
    leftovers = [n for n in cache_files(root) if ".tmp-" in n]
    assert leftovers == [] and json.loads(old.manifest_path.read_text())["kept"] == 6  # old cache untouched
    (root / folder.CACHE_FOLDER / ".16px.deadbeef.npy.tmp-1").write_bytes(b"left by kill -9")
    monkeypatch.setattr(cache, "decode_file", folder.decode_file)
    fresh = prepare(dconf(root), SIZE, progress=False)
    assert fresh.built and fresh.manifest["kept"] == 7
    assert cache_files(root) == sorted(["16px.json", fresh.data_path.name])


@pytest.mark.parametrize("damage", ["truncate", "manifest"])
def test_damaged_cache_is_rebuilt(tmp_path, damage):
    root = make_folder(tmp_path / "faces")
    p = prepare(dconf(root), SIZE, progress=False)
    if damage == "truncate":
        with open(p.data_path, "r+b") as f:
            f.truncate(1000)
    else:
        p.manifest_path.write_text("{ not json")
    again = prepare(dconf(root), SIZE, progress=False, load=True)
    assert again.built and again.images.shape == (6, 3, SIZE, SIZE)


def test_cache_dir_option_and_read_only_fallback(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "faces")
    p = prepare(dconf(root, cache_dir=str(tmp_path / "cc")), SIZE, progress=False)
    assert p.data_path.parent.parent == tmp_path / "cc" and p.data_path.parent.name.startswith("t-")
    assert not (root / folder.CACHE_FOLDER).exists()

    (root / folder.CACHE_FOLDER).write_text("a file where the cache folder would go: not writable")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    p = prepare(dconf(root), SIZE, progress=False)
    assert p.data_path.parent.parent == tmp_path / "home-cache" / "animegan"


def test_cache_dir_inside_the_root_is_not_listed(tmp_path):
    root = make_folder(tmp_path / "faces")
    conf = dconf(root, cache_dir=str(root / "cache"))
    prepare(conf, SIZE, progress=False)
    second = prepare(conf, SIZE, progress=False)
    assert not second.built and second.manifest["files"] == 6 and second.manifest["other_files_ignored"] == 0


def test_worker_pool_gives_the_same_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "faces", n=10)
    (root / "bad.jpg").write_text("x")
    one = prepare(dconf(root, cache_dir=str(tmp_path / "c1")), SIZE, progress=False, load=True)
    monkeypatch.setattr(cache, "POOL_MIN_FILES", 1)
    decoders = tmp_path / "decoders"  # one file per process that decoded a file
    decoders.mkdir()
    real_decode = cache.decode_file

    def noted(path, spec):
        (decoders / str(os.getpid())).touch()
        return real_decode(path, spec)

    monkeypatch.setattr(cache, "decode_file", noted)  # the forked workers inherit the patch
    two = prepare(dconf(root, cache_dir=str(tmp_path / "c2"), workers=2), SIZE, progress=False, load=True)
    assert np.array_equal(one.images, two.images) and two.manifest["dropped"] == {"not an image": 1}
    pids = {int(p.name) for p in decoders.iterdir()}
    assert pids and os.getpid() not in pids  # the pool's processes decoded, not this one


def test_build_image_bank_reads_folders_through_the_cache(tmp_path):
    root = make_folder(tmp_path / "faces", n=5)
    bank = build_image_bank(dataclasses.replace(dconf(root), flip=False), SIZE, seed=0, progress=False)
    assert len(bank) == 5 and bank.image_size == SIZE and bank.images.dtype == torch.uint8
    assert (root / folder.CACHE_FOLDER / "16px.json").exists()
    x = bank.batch(torch.arange(5), torch.Generator())
    assert x.shape == (5, 3, SIZE, SIZE) and -1 <= x.min() and x.max() <= 1
