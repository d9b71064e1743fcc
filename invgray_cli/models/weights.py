"""Stage 2 (models): weights files in and out. One atomic safetensors save, one checked load, for
every kind of net (see ``kinds.py``).

Files are safetensors (no pickle, so loading cannot run code). Their metadata holds
``{"format": <the kind's>, "config": <the net's config as JSON>}`` and, for some, ``name`` and
``model_sha256`` (the codec model a companion serves). A file is untrusted until checked, in an
order that keeps the work bounded; each failure is a one-line error:

1. the path is a file, and its sha256 starts with the expected prefix (when one is expected);
2. its header reads, its ``format`` is the kind asked for;
3. its config (JSON parsed with limits) holds only the kind's fields, each within its bounds;
4. the net that config describes, laid out on the meta device (no memory), has exactly the file's
   tensor names and shapes, all of them floating point;
5. every tensor is finite (weights full of NaN made all-black grays).

Only then is the net given memory and the file's tensors.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from invgray_cli.errors import InvgrayError
from invgray_cli.models.kinds import CODEC_NET, NetKind, kind_of, kind_of_format
from invgray_cli.untrusted import parse_json, printable

FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
WEIGHTS_NAME = re.compile(r"[a-z0-9_]{1,48}\.[a-z0-9_]{1,48}")  # arch.tag, as the zoo names files
MIN_SHA256_PREFIX = 8  # hex digits: shorter prefixes (the empty one above all) would match too much


@dataclass(frozen=True)
class LoadedWeights:
    """A net loaded from a file (on the CPU, in eval mode, without gradients) and the file's facts."""

    net: nn.Module
    sha256: str  # of the whole file
    metadata: dict[str, str]
    path: Path

    @property
    def name(self) -> str:
        """The ``arch.tag`` the file calls itself, else ``file:STEM``. A name that is not a plain
        ``arch.tag`` is not taken: it would be copied into the chunk of every gray made with it."""
        claimed = self.metadata.get("name") or ""
        return claimed if WEIGHTS_NAME.fullmatch(claimed) else f"file:{printable(self.path.stem)[:64]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_matches(digest: str, prefix: str) -> bool:
    """Whether ``prefix`` (at least MIN_SHA256_PREFIX hex digits) starts the hex ``digest``."""
    prefix = prefix.lower()
    return len(prefix) >= MIN_SHA256_PREFIX and re.fullmatch(r"[0-9a-f]+", prefix) is not None and \
        digest.startswith(prefix)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_weights(net: nn.Module, path: str | Path, **metadata: str | None) -> str:
    """Write ``net`` (any kind) as safetensors with its kind's format, its config and the given
    ``metadata`` (``name``, ``model_sha256``; empty ones left out); returns the file's sha256.

    Written to a ``.part`` file beside ``path`` and renamed over it, so ``path`` is never half
    written; readable by all, as shared weights are meant to be (safetensors writes 0600).
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {key: value.detach().cpu().contiguous() for key, value in net.state_dict().items()}
    fields = {"format": kind_of(net).file_format, "config": json.dumps(net.config.to_dict(), sort_keys=True)}
    fields.update({key: value for key, value in metadata.items() if value})
    part = path.with_name(f".{path.name}.part")
    try:
        save_file(tensors, str(part), metadata=fields)
        os.chmod(part, 0o666 & ~_umask())
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return file_sha256(path)


def load_weights(path: str | Path, kind: NetKind = CODEC_NET, expected_sha256: str | None = None) -> LoadedWeights:
    """The net of ``kind`` in the file at ``path``, checked as the module docstring says
    (``expected_sha256``: the full digest or a prefix of it; None: any file)."""
    path = Path(path)
    if not path.exists():
        raise InvgrayError(f"weights file {path} does not exist")
    if not path.is_file():
        raise InvgrayError(f"weights path {path} is not a file")
    digest = file_sha256(path)
    if expected_sha256 is not None and not sha256_matches(digest, expected_sha256):
        raise InvgrayError(f"weights file {path} has sha256 {digest[:16]}… but {printable(expected_sha256[:16])}… "
                           "was expected: the file is corrupt or was tampered with; restore it (reinstall invgray)")
    metadata, shapes = _read_header(path)
    _check_format(path, metadata, kind)
    config = kind.config_from(parse_json(metadata.get("config", ""), f"{path}'s config"), str(path))
    with torch.device("meta"):
        blueprint = kind.build(config)
    _check_shapes(path, kind, blueprint, shapes)
    # copies of the file's tensors (safetensors maps the file) become the blueprint's (assign):
    # making empty CPU tensors from meta ones first would import sympy, 0.26 s of every start
    dtypes = {key: value.dtype for key, value in blueprint.state_dict().items()}
    tensors = {key: value.to(dtypes[key], copy=True) for key, value in read_tensors(path).items()}
    blueprint.load_state_dict(tensors, strict=True, assign=True)
    return LoadedWeights(blueprint.eval().requires_grad_(False), digest, metadata, path)


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[list[int], str]]]:
    """(metadata, {tensor name: (shape, dtype)}) of a safetensors file, no tensor read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            shapes = {key: (handle.get_slice(key).get_shape(), handle.get_slice(key).get_dtype())
                      for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InvgrayError(f"{path} is not a readable safetensors weights file ({printable(exc)})") from None
    return metadata, shapes


def _check_format(path: Path, metadata: dict[str, str], kind: NetKind) -> None:
    file_format = metadata.get("format")
    if file_format == kind.file_format:
        return
    other = kind_of_format(file_format) if isinstance(file_format, str) else None
    if other is not None:
        raise InvgrayError(f"{path} holds an invgray {other.what}, not an invgray {kind.what}")
    raise InvgrayError(f"{path} is not an invgray {kind.what} file (metadata format "
                       f"'{printable(str(file_format)[:40])}')")


def _check_shapes(path: Path, kind: NetKind, blueprint: nn.Module, shapes: dict[str, tuple[list[int], str]]) -> None:
    """The file's tensors are the blueprint's, name for name and shape for shape, all floats."""
    expected = {key: list(value.shape) for key, value in blueprint.state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    if missing or unexpected:
        what = f"lacks tensor {missing[0]}" if missing else f"has unexpected tensor '{printable(unexpected[0][:60])}'"
        raise InvgrayError(f"{path} does not match its own {kind.what} config: it {what}")
    for key, wanted in expected.items():  # in the net's order, so the first mismatch named is the first layer's
        shape, dtype = shapes[key]
        if shape != wanted:
            raise InvgrayError(f"{path} does not match its own {kind.what} config: tensor {key} is "
                               f"{tuple(shape)}, its config makes {tuple(wanted)}")
        if dtype not in FLOAT_DTYPES:
            raise InvgrayError(f"{path}: tensor {key} holds {printable(dtype)}, not floating-point weights")


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, refused unless all are finite."""
    from safetensors import safe_open

    tensors: dict[str, Any] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as exc:
        raise InvgrayError(f"{path} is not a readable safetensors weights file ({printable(exc)})") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InvgrayError(f"{path}: tensor {printable(key[:60])} holds NaN or infinite values; the weights "
                               "are broken (retrain, or restore the file)")
    return tensors
