"""The torch device a command runs on, from the name the user gave (auto, cpu, cuda, cuda:N).
Its own module: animegan-sample needs it without the training code's imports."""

from __future__ import annotations

import torch

from animegan.errors import AnimeganError


def select_device(name: str) -> torch.device:
    """auto (CUDA if present, else CPU), cpu, cuda or cuda:N, checked against this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AnimeganError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AnimeganError(f"device={name} was asked for, but PyTorch sees no CUDA GPU here; "
                                "use device=cpu or device=auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise AnimeganError(f"device={name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        if device.index is not None:
            torch.cuda.set_device(device)  # libraries that allocate on "the current GPU" use this one too
    return device
