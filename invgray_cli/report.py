"""Base: one JSON shape for every command that reports: ``{name, description, model, versions, device,
results}`` (CompressAI's tools all print ``{name, description, results}``), so a script reads
`invgray eval`, `invgray bench` and `encode`/`decode --json` the same way."""
from __future__ import annotations

import platform
from typing import Any


def versions() -> dict[str, str]:
    """Library versions the numbers were made with. Imports torch: call only when reporting."""
    import numpy
    import PIL
    import torch

    from invgray_cli import __version__

    return {"invgray": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "pillow": PIL.__version__, "python": platform.python_version()}


def model_facts(name: str | None, sha256: str | None) -> dict[str, str | None]:
    return {"name": name, "sha256": sha256}


def envelope(name: str, description: str, model: dict[str, str | None], device: str | None, results: Any,
             **extra: Any) -> dict:
    """The report: the common keys first, command-specific ones (tile, paper, ...) before ``results``."""
    return {"name": name, "description": description, "model": model, "versions": versions(), "device": device,
            **extra, "results": results}
