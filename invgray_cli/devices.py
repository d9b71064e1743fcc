"""Base: device choice and the dtype that follows it (one place, as timm's resolve_precision)."""
from __future__ import annotations

import torch

from invgray_cli.errors import InvgrayError


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


PRECISIONS = ("auto", "fp32", "fp16")


def dtype_for(device: torch.device) -> torch.dtype:
    """The dtype tensors are stored and moved in: fp32 (reduced precision is autocast, see below)."""
    return torch.float32


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype the nets run in, None for plain fp32.

    ``auto`` is fp16 on CUDA: measured on an H100 (issue 10) it restored `val` at 40.29 dB against
    fp32's 40.30 (bf16: 39.84, over the 0.1 dB rule), and fp32 on the CPU, where fp16 is slow.
    """
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise InvgrayError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise InvgrayError("fp16 runs on CUDA only; use --precision fp32 (or auto) on the CPU")
    if precision == "fp16" or (precision == "auto" and device.type == "cuda"):
        return torch.float16
    return None


def exact_fp32(device: torch.device) -> None:
    """fp32 on CUDA means fp32: cuDNN convolutions default to TF32 (10-bit mantissa), which made
    tiled and whole-image runs differ by gray levels. Called wherever a net is put on a device."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def reproducible(device: torch.device) -> None:
    """Training on CUDA picks deterministic cuDNN kernels, so a resumed run repeats the
    uninterrupted one bit for bit (as on the CPU); the autotuner would choose per run."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
