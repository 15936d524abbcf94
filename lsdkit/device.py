"""The one device rule: ``auto`` is the local CUDA device when there is one, else the CPU."""

from __future__ import annotations

import os

import torch

from lsdkit.errors import ArgumentError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; otherwise ``spec``.

    Asking for CUDA on a machine without it is an :class:`~lsdkit.errors.ArgumentError` naming the value.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec in (None, "", "auto"):
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise ArgumentError(f"device {spec!r} is not a device (auto, cpu, cuda, cuda:N): {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(f"device {spec!r}: CUDA is not available on this machine (use cpu or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ArgumentError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise ArgumentError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N")
    return dev
