"""The one device rule (``auto`` is the local CUDA device when there is one, else the CPU) and the
one precision rule (``auto`` is bf16 autocast where the hardware computes bf16 natively, else fp32).
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager

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


# --- precision ---------------------------------------------------------------------------------------
PRECISIONS = ("auto", "bf16", "fp32")

# /proc/cpuinfo flags of CPUs with native bf16 arithmetic: x86 AMX-BF16 / AVX512-BF16, Arm BF16
_BF16_FLAGS = {"amx_bf16", "avx512_bf16", "bf16"}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 ``amx_bf16``/``avx512_bf16``, Arm ``bf16``).

    Read from the flags/features lines of ``/proc/cpuinfo`` (Linux); False where they cannot be
    read (another OS: bf16 would be emulated there, slower than fp32).
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features") and _BF16_FLAGS & set(value.split()):
                    return True
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str | torch.device | None = "auto") -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (auto | bf16 | fp32) means on ``device``.

    ``auto`` is bf16 on a CUDA device that supports it and on a CPU with native bf16
    (:func:`cpu_has_native_bf16`), fp32 elsewhere (MPS, older GPUs, other CPUs). bf16 means
    autocast: master weights, optimizer state and losses stay fp32 (:func:`autocast`).
    """
    if precision not in PRECISIONS:
        raise ArgumentError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    dev = resolve_device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if dev.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast on ``device`` for a resolved ``precision`` of ``"bf16"``; a no-op for ``"fp32"``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
