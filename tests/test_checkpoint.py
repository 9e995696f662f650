"""Checkpoints are written atomically and loaded safely; foreign files get one clear line."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from animegan import checkpoint as ckpt
from animegan.errors import AnimeganError


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    torch.save({"format": ckpt.GENERATOR_FORMAT, "payload": _Payload(marker)}, path)
    with pytest.raises(AnimeganError, match="could run code"):
        ckpt.load_checkpoint(path)
    assert not marker.exists()  # refused before anything ran
    torch.load(path, weights_only=False)  # what the check keeps out: loaded without it, the payload runs
    assert marker.exists()


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "not a readable PyTorch checkpoint"),
        (b"this is a text file\n", "not a readable PyTorch checkpoint"),
        (pickle.dumps([1, 2, 3]), "not a readable PyTorch checkpoint|not an animegan checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, match):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(AnimeganError, match=match) as info:
        ckpt.load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_a_plain_state_dict_from_elsewhere_is_named_as_such(tmp_path):
    path = tmp_path / "netG.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(AnimeganError, match="not an animegan checkpoint"):
        ckpt.load_checkpoint(path)


def test_missing_file_and_newer_format(tmp_path):
    with pytest.raises(AnimeganError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    path = tmp_path / "future.pt"
    torch.save({"format": ckpt.GENERATOR_FORMAT, "version": 99}, path)
    with pytest.raises(AnimeganError, match="newer"):
        ckpt.load_checkpoint(path)
