"""The preparation cache: decode a folder once per resolution, then reuse the result.

A cache is two files in the cache folder: `<size>px.<id>.npy`, all kept images as one
uint8 array [N, 3, size, size], and `<size>px.json`, the manifest (source root, decode
options, file-list fingerprint, counts kept and dropped by reason). The manifest is
written last, by an atomic rename, and names its data file: a preparation killed at any
point leaves either the previous complete cache or none, never one that looks valid.

The cache is reused only while the manifest matches exactly: the same files (relative
paths, sizes, mtimes), resolution, crop, filter and cleaning options. Anything else
rebuilds it. A lock file serialises two processes preparing the same cache at once (and is
deleted when the preparation ends). The space the data file needs is checked before any
file is decoded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np
from tqdm import tqdm

from animegan.data import archive
from animegan.data.folder import (
    CACHE_FOLDER, EXTENSIONS, Decoded, DecodeSpec, ImageFile, check_root, decode_bytes, decode_file, is_archive,
    list_images,
)
from animegan.data.workers import default_workers, pool_context
from animegan.errors import AnimeganError
from animegan.files import atomic_replace, drop_lock_file, take_lock_file

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the data layout or the decoding changes: old caches then rebuild
POOL_MIN_FILES = 256  # below this a worker pool costs more than it saves
DUPLICATE, NEAR_DUPLICATE = "duplicate", "near-duplicate"
CACHE_REMEDY = "free some space or put the cache elsewhere (dataset.cache_dir=/a/folder/with/space)"


@dataclass
class Prepared:
    manifest: dict  # what is in the cache (see _build)
    manifest_path: Path  # <cache folder>/<size>px.json
    data_path: Path  # the .npy file with the images
    built: bool  # True: decoded now; False: an existing cache was reused
    seconds: float  # time this preparation took (listing + check, or the whole build)
    images: Optional[np.ndarray] = None  # the loaded array, when prepare(load=True)


def prepare(conf, size: int, progress: bool = True, load: bool = False) -> Prepared:
    """Make sure a valid cache of `conf` (a DatasetConfig of kind folder) exists at `size` px."""
    started = time.perf_counter()
    root = check_root(conf.root, conf.name, conf.source)
    folder = cache_folder(conf, root)
    packed = is_archive(root)
    files, ignored = archive.list_archive(root) if packed else list_images(root, exclude=[str(folder)])
    if not files:
        how = f"; {conf.source}" if conf.source else ""
        raise AnimeganError(f"dataset '{conf.name}': no image files ({', '.join(EXTENSIONS)}) below {root}"
                            f" ({ignored} other files ignored){how}")
    spec = DecodeSpec(size=size, crop=conf.crop, resize_filter=conf.resize_filter, min_size=conf.min_size,
                      content_hash=conf.dedupe, perceptual_hash=conf.near_dedupe)
    st = os.stat(root)
    whole = [ImageFile("", st.st_size, st.st_mtime_ns)] if packed else []  # the archive itself
    key = {"format": FORMAT, "image_size": size, "options": _options(conf), "fingerprint": fingerprint(whole + files)}
    stem = f"{size}px"
    manifest_path = folder / f"{stem}.json"
    with _locked(folder / f"{stem}.lock"):
        manifest = _valid_manifest(manifest_path, key)
        built = manifest is None
        if built:
            manifest = _build(conf, root, packed, files, ignored, spec, key, folder, stem, progress)
        data_path = folder / manifest["data_file"]
        images = _load(data_path, manifest) if load else None
    return Prepared(manifest, manifest_path, data_path, built, time.perf_counter() - started, images)


def cache_folder(conf, root: str) -> Path:
    """`dataset.cache_dir`/<name>-<hash> if set, else <root>/.animegan-cache when that is
    writable (for an archive: .animegan-cache/<archive name>/ beside it), else
    ~/.cache/animegan/<name>-<hash> (the hash tells two roots apart)."""
    tag = f"{conf.name}-{hashlib.sha256(os.fsencode(root)).hexdigest()[:12]}"
    if conf.cache_dir:
        return _writable(Path(conf.cache_dir).expanduser().absolute() / tag, required=True)
    beside = Path(root).parent / CACHE_FOLDER / Path(root).name if is_archive(root) else Path(root) / CACHE_FOLDER
    inside = _writable(beside, required=False)
    if inside is not None:
        return inside
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return _writable(home / "animegan" / tag, required=True)


def fingerprint(files: List[ImageFile]) -> str:
    """Hash of the file list: any file added, removed, resized or touched changes it."""
    h = hashlib.sha256()
    for f in files:
        h.update(os.fsencode(f.rel) + b"\0%d\0%d\n" % (f.size, f.mtime_ns))
    return h.hexdigest()


def _options(conf) -> dict:
    return {"crop": conf.crop, "resize_filter": conf.resize_filter, "min_size": conf.min_size,
            "dedupe": conf.dedupe, "near_dedupe": conf.near_dedupe,
            "near_dedupe_distance": conf.near_dedupe_distance if conf.near_dedupe else None}


def _writable(folder: Path, required: bool) -> Optional[Path]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.touch()  # a real write: access() says yes to root on read-only folders
        probe.unlink()
        return folder
    except OSError as exc:
        if required:
            raise AnimeganError(f"cannot write the dataset cache in {folder} ({exc.strerror}); "
                                "set dataset.cache_dir=/a/writable/folder") from None
        return None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    fd = take_lock_file(lock_path, wait=False)
    if fd is None:
        log.info("waiting for another process preparing %s", lock_path.parent)
        fd = take_lock_file(lock_path, wait=True)
    try:
        yield
    finally:
        drop_lock_file(lock_path, fd)


def _valid_manifest(path: Path, key: dict) -> Optional[dict]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        data = path.parent / manifest["data_file"]
        if all(manifest.get(k) == v for k, v in key.items()) and data.stat().st_size == manifest["data_bytes"]:
            return manifest
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or an unreadable one: build anew
    return None


def _load(data_path: Path, manifest: dict) -> np.ndarray:
    # A plain read, not a memory map: the bank needs the images in memory anyway, and one
    # private copy keeps the peak at one dataset (mmap + copy would briefly hold two).
    images = np.load(data_path, allow_pickle=False)
    if images.dtype != np.uint8 or list(images.shape) != manifest["shape"]:
        raise AnimeganError(f"the dataset cache {data_path} is damaged; delete it and run again")
    return images


def _build(conf, root, packed, files, ignored, spec, key, folder, stem, progress) -> dict:
    started = time.perf_counter()
    for old in folder.glob(f".{stem}.*.tmp-*"):  # left by a killed build (we hold the lock)
        old.unlink(missing_ok=True)
    data_file = f"{stem}.{secrets.token_hex(4)}.npy"
    duplicates = _Duplicates(len(files), conf.dedupe, conf.near_dedupe, conf.near_dedupe_distance)
    kept, dropped, notes, dropped_files = 0, Counter(), Counter(), []
    workers = conf.workers or default_workers()
    shape = (len(files), 3, spec.size, spec.size)
    header = _npy_header(shape)
    needed = len(header) + int(np.prod(shape))  # known before a single file is decoded
    with atomic_replace(folder / data_file, needed, remedy=CACHE_REMEDY) as tmp:
        # Each image is appended to the file as it arrives (no copy of the data set in
        # memory), into space reserved up front: a disk that fills meanwhile fails here,
        # with an error, not later through a memory map with SIGBUS. The rows left unused
        # by dropped files are cut off at the end.
        with open(tmp, "wb") as out, _decoded(root, packed, files, spec, workers) as results, tqdm(
            total=len(files), desc=f"preparing {conf.name} at {spec.size}px", unit="img", disable=not progress,
            leave=False, mininterval=0.5, dynamic_ncols=True,
        ) as bar:
            _reserve(out, needed)
            out.write(header)
            for f, d in zip(files, results):
                reason = d.reason or duplicates.check(d)
                if reason:
                    dropped[reason] += 1
                    dropped_files.append([_printable(f.rel), reason])
                else:
                    out.write(np.ascontiguousarray(d.image, dtype=np.uint8).data)
                    kept += 1
                    notes.update(d.notes)
                bar.update()
        if kept == 0:
            summary = ", ".join(f"{n} {r}" for r, n in dropped.most_common())
            raise AnimeganError(f"dataset '{conf.name}': none of the {len(files)} image files below {root} "
                                f"is usable ({summary})")
        data_bytes = _shrink_npy(tmp, kept)
    manifest = {
        **key, "dataset": conf.name, "source_root": root, "data_file": data_file, "shape": [kept, 3, spec.size, spec.size],
        "data_bytes": data_bytes, "files": len(files), "kept": kept, "dropped": dict(dropped.most_common()),
        "converted": dict(notes.most_common()), "other_files_ignored": ignored,
        "seconds": round(time.perf_counter() - started, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dropped_files": dropped_files,
    }
    with atomic_replace(folder / f"{stem}.json") as tmp:  # the commit point
        tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    for old in folder.glob(f"{stem}.*.npy"):  # data of earlier builds, no longer named by a manifest
        if old.name != data_file:
            old.unlink(missing_ok=True)
    return manifest


class _Duplicates:
    """Exact duplicates by file hash; near-duplicates by dHash within a Hamming distance.
    The first file (in path order) wins; only kept images are remembered."""

    def __init__(self, n: int, exact: bool, near: bool, distance: int):
        self.exact, self.near, self.distance = exact, near, distance
        self.seen = set()
        self.hashes = np.zeros(n if near else 0, dtype=np.uint64)
        self.count = 0

    def check(self, d: Decoded) -> str:
        if self.exact:
            if d.content_hash in self.seen:
                return DUPLICATE
            self.seen.add(d.content_hash)
        if self.near:
            h = np.uint64(d.dhash)
            if self.count and int(np.bitwise_count(self.hashes[:self.count] ^ h).min()) <= self.distance:
                self.seen.discard(d.content_hash)
                return NEAR_DUPLICATE
            self.hashes[self.count] = h
            self.count += 1
        return ""


def _npy_header(shape: tuple) -> bytes:
    """The .npy header of a uint8 array of `shape` (what np.save writes before the data)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return header.getvalue()


def _reserve(f, size: int) -> None:
    """Allocate `size` bytes of the file's blocks now, where the file system can."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def _shrink_npy(path: Path, kept: int) -> int:
    """Cut an [n, ...] .npy down to its first `kept` rows in place; return the file size.

    NumPy pads the header so the first dimension can change without moving the data."""
    with open(path, "r+b") as f:
        fmt = np.lib.format
        v1 = fmt.read_magic(f) == (1, 0)
        shape, fortran, dtype = (fmt.read_array_header_1_0 if v1 else fmt.read_array_header_2_0)(f)
        header_len = f.tell()
        header = io.BytesIO()
        (fmt.write_array_header_1_0 if v1 else fmt.write_array_header_2_0)(
            header, {"descr": fmt.dtype_to_descr(dtype), "fortran_order": fortran, "shape": (kept, *shape[1:])})
        if len(header.getvalue()) != header_len:
            raise RuntimeError(f"unexpected .npy header size in {path}")
        f.seek(0)
        f.write(header.getvalue())
        size = header_len + kept * int(np.prod(shape[1:])) * dtype.itemsize
        f.truncate(size)
    return size


def _printable(rel: str) -> str:
    return os.fsencode(rel).decode("utf-8", "backslashreplace")  # non-UTF-8 names stay readable JSON


# --- decoding in worker processes -------------------------------------------------------------

_WORK: tuple = ()


@contextlib.contextmanager
def _decoded(root: str, packed: bool, files: List[ImageFile], spec: DecodeSpec,
             workers: int) -> Iterator[Iterator[Decoded]]:
    """The decoded `files` in their order: in this process, or from a pool of `workers`.
    A folder's workers read their files themselves; an archive is read here, in order,
    and its members' bytes go to the workers."""
    paths = [] if packed else [os.path.join(root, f.rel) for f in files]
    members = archive.read_members(root, files) if packed else None
    if workers <= 1 or len(files) < POOL_MIN_FILES:
        yield (decode_bytes(m, spec) for m in members) if packed else (decode_file(p, spec) for p in paths)
        return
    with pool_context().Pool(workers, _init_worker, (paths, spec)) as pool:
        chunk = max(1, min(64, len(files) // (workers * 8)))
        yield pool.imap(_decode_member, members, chunksize=chunk) if packed else \
            pool.imap(_decode_index, range(len(paths)), chunksize=chunk)


def _init_worker(paths: List[str], spec: DecodeSpec) -> None:
    global _WORK
    _WORK = (paths, spec)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the pool


def _decode_index(i: int) -> Decoded:
    paths, spec = _WORK
    return decode_file(paths[i], spec)


def _decode_member(data) -> Decoded:
    return decode_bytes(data, _WORK[1])
