"""A downloaded archive as a dataset: `dataset.root=faces.zip` (or .tar, .tar.gz, .tgz,
.tar.bz2, .tar.xz) is read as it is, without unpacking it anywhere.

The archive's image members are listed with the same rules as a folder's files (hidden
names, __MACOSX and other extensions skipped), then read one after another in the main
process, in the order the cache stores them, while the decoding workers turn their bytes
into images. A zip is read in path order, as the same faces unpacked into a folder are
(the cache then holds the same images in the same order); a tar in the order it stores
its members (a compressed tar cannot be read in any other order without starting over).
A member that cannot be read is dropped and counted like a broken file; an archive that
cannot be opened, or that ends early, stops the preparation with one line.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from typing import Iterator, List, Tuple, Union

from animegan.data.folder import CORRUPT, EMPTY, EXTENSIONS, ImageFile
from animegan.errors import AnimeganError

def _usable(name: str) -> bool:
    parts = [p for p in name.split("/") if p not in ("", ".")]  # tar names often start with ./
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    return not hidden and os.path.splitext(name)[1].lower() in EXTENSIONS


def _broken(path: str, exc: Exception) -> AnimeganError:
    return AnimeganError(f"dataset archive {path} is truncated or corrupt ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); download it again, or unpack "
                         "it and pass the folder as dataset.root")


def list_archive(path: str) -> Tuple[List[ImageFile], int]:
    """(the image members in reading order, number of other members ignored). An
    ImageFile's mtime_ns holds the member's CRC-32 (zip) or mtime (tar): any change of a
    member changes the cache's fingerprint."""
    try:
        if path.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                found = [ImageFile(m.filename, m.file_size, m.CRC) for m in members if _usable(m.filename)]
                found.sort(key=lambda f: os.fsencode(f.rel))  # a folder's order: byte order of the paths
        else:
            with tarfile.open(path) as archive:
                members = [m for m in archive if m.isfile()]
                found = [ImageFile(m.name, m.size, int(m.mtime)) for m in members if _usable(m.name)]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise _broken(path, exc) from None
    return found, len(members) - len(found)


def read_members(path: str, files: List[ImageFile]) -> Iterator[Union[bytes, str]]:
    """The bytes of each of `files` in their order, or the reason one is dropped."""
    try:
        if path.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for f in files:
                    yield _read(lambda: archive.read(f.rel))
        else:
            with tarfile.open(path, mode="r|*") as archive:  # a stream: each member once, in stored order
                for member in archive:  # the members list_archive listed, by the same rule
                    if member.isfile() and _usable(member.name):
                        handle = archive.extractfile(member)
                        yield _read(handle.read) if handle is not None else CORRUPT
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise _broken(path, exc) from None


def _read(read) -> Union[bytes, str]:
    try:
        data = read()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError):  # bad CRC, encrypted
        return CORRUPT
    return data if data else EMPTY
