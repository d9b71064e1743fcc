"""Device choice and the dtype that follows it (one place, as timm's resolve_precision)."""
from __future__ import annotations

import torch

from .errors import InvgrayError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InvgrayError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvgrayError(f"device '{spec}' asked for but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvgrayError(f"device '{spec}' does not exist ({torch.cuda.device_count()} CUDA device(s))")
    elif device.type != "cpu":
        raise InvgrayError(f"unsupported device '{spec}'; use auto, cpu, cuda or cuda:N")
    return device


def dtype_for(device: torch.device) -> torch.dtype:
    """fp32 everywhere. Reduced precision on GPU must keep restored PSNR within 0.1 dB of fp32;
    that has not been measured yet, so CUDA stays fp32 too."""
    return torch.float32
