"""invgray: colour photos to ordinary-looking grayscale PNGs that restore their colour.

The public API (``encode``, ``decode``, ``load_model``, and ``InvgrayError`` for the mistakes
it reports) is imported lazily so that ``invgray --version`` answers without importing torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.8.0"
__all__ = ["__version__", "encode", "decode", "load_model", "InvgrayError"]


def __getattr__(name: str) -> Any:
    if name in ("encode", "decode", "load_model"):
        from invgray_cli import api

        return getattr(api, name)
    if name == "InvgrayError":
        from invgray_cli.errors import InvgrayError

        return InvgrayError
    raise AttributeError(f"module 'invgray_cli' has no attribute {name!r}")
