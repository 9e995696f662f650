"""Mixed precision for one run: which autocast dtype it trains in, and fp16 loss scaling.

`train.precision=auto` picks, per device:
- CUDA: bf16 on GPUs that compute in bf16 natively (compute capability 8.0 and newer:
  A100, RTX 30xx/40xx, H100). Older GPUs with tensor cores (7.x: V100, T4, what most free
  notebooks give) get fp16 with loss scaling: `torch.cuda.is_bf16_supported()` is True on
  them too, but there bf16 is emulated and slower than fp32. Below 7.0, fp32.
- CPU: bf16 where the CPU has bf16 instructions (AVX512-BF16 or AMX), else fp32: oneDNN
  emulates bf16 elsewhere and a DCGAN step ran ~2.5x slower than fp32.

fp16 has 5 exponent bits: small gradients underflow to zero unless the loss is scaled up
before the backward pass. `LossScaling` does that with one `torch.amp.GradScaler` per
network (D and G take their steps separately), skips a step whose gradients overflowed,
and counts the skipped steps for the log. For fp32 and bf16 it is a plain backward + step.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from animegan.choices import PRECISIONS

# train.precision -> autocast dtype (None: no autocast), from the names in animegan.choices
AUTOCAST_DTYPES = {name: getattr(torch, dtype) if dtype else None for name, dtype in PRECISIONS.items()
                   if name != "auto"}
NETWORKS = ("D", "G")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32', 'bf16' or 'fp16' for the config value `precision` (auto or one of those)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16" if major >= 7 else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LossScaling:
    """Backward pass and optimizer step for D and G, loss-scaled when `enabled` (fp16)."""

    def __init__(self, device: torch.device, enabled: bool):
        self.enabled = enabled
        self.scalers = {net: torch.amp.GradScaler(device.type, enabled=enabled) for net in NETWORKS}
        self._one = torch.ones((), device=device)
        self._skipped = torch.zeros(len(NETWORKS), device=device)  # on the device: no host sync per step

    def step(self, net: str, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
             sync: Optional[Callable[[], None]] = None) -> None:
        """loss.backward() and optimizer.step() for network `net` ('D' or 'G'); `sync`
        runs between them (the gradients' average over processes)."""
        if not self.enabled:
            loss.backward()
            if sync is not None:
                sync()
            optimizer.step()
            return
        scaler = self.scalers[net]
        before = scaler.scale(self._one)  # the current scale, as a device tensor
        scaler.scale(loss).backward()
        if sync is not None:
            sync()  # scaled gradients average just as well; an inf anywhere skips the step everywhere
        scaler.step(optimizer)  # skipped when the gradients hold inf/NaN ...
        scaler.update()  # ... and then the scale is lowered: that is how a skip shows
        self._skipped[NETWORKS.index(net)] += (scaler.scale(self._one) < before).float()

    def grad_scale(self, net: str) -> Optional[torch.Tensor]:
        """The scale a double-backward penalty (R1, gradient penalty) multiplies its output by
        before differentiating and divides the gradient by afterwards; None when disabled."""
        return self.scalers[net].scale(self._one) if self.enabled else None

    def skipped(self) -> Dict[str, int]:
        """Steps skipped so far per network (reads the device)."""
        return dict(zip(NETWORKS, (int(v) for v in self._skipped.tolist())))

    def state_dict(self) -> dict:
        if not self.enabled:
            return {}
        return {"scalers": {net: s.state_dict() for net, s in self.scalers.items()},
                "skipped": self._skipped.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if not self.enabled or not state:
            return  # a run resumed in another precision starts with a fresh scale
        for net, s in self.scalers.items():
            s.load_state_dict(state["scalers"][net])
        self._skipped.copy_(state["skipped"])
