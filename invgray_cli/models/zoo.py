"""Named, checksummed weights: the registry, safe loading and saving.

Names follow timm's ``arch.tag`` convention and the first entry is the default.
Files are safetensors (no pickle, so loading cannot run code); their metadata holds
``{"format": "invgray-weights/1", "config": <NetConfig json>}`` so a file rebuilds
its own network, and the sha256 of the whole file is checked on load.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Callable, TypeVar

from invgray_cli.errors import InvgrayError
from invgray_cli.models.net import EdgeDecoder, InvertibleGray, NetConfig

T = TypeVar("T")
E = TypeVar("E", bound="CompanionEntry")

WEIGHTS_FORMAT = "invgray-weights/1"
WEIGHTS_DIR_ENV = "INVGRAY_WEIGHTS_DIR"  # overrides where shipped weights are looked for


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped weights file and the facts the loader and tiler need about it."""

    name: str  # "arch.tag"
    file: str  # file name inside weights_dir(); contains the sha256 prefix
    sha256: str  # full hex digest of the file
    config: dict  # NetConfig arguments
    divisibility: int
    receptive_field: int  # radius in pixels
    description: str
    licence: str
    # encode keeps each gray's mean structure term vs luma at least this (see guard.py); None: off
    gray_floor: float | None = None
    # trained with JPEG in the loop: the model for JPEG grays, written at this quality by default
    jpeg_quality: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: written into the gray's chunk and reported by the CLI."""

    name: str
    sha256: str
    divisibility: int
    receptive_field: int
    path: Path | None = None
    gray_floor: float | None = None  # from the registry entry; None for a --weights file
    jpeg_quality: int | None = None  # the registry's JPEG quality for a model trained with JPEG in the loop


# First entry = default. Each file is made by `invgray train` (recipe in its model card, weights/NAME.md).
REGISTRY: list[WeightsEntry] = [
    WeightsEntry(
        name="igray_s4w96.invisible_v2",
        file="igray_s4w96_invisible_v2-5ee4bae4.safetensors",
        sha256="5ee4bae484eda4cd6ea76b76784834f4b887df73bdf98582deb5f7183bc137e1",
        config={"scale": 4, "width": 96, "encoder_blocks": 4, "decoder_blocks": 4, "max_residual": 0.25,
                "carrier_gain": 0.25},
        divisibility=4,
        receptive_field=44,
        description="the gray first: photos789_v1 fine-tuned to hide its pattern on smooth photos and digital "
        "art (per-window structure hinge, defocus and synthetic-art crops); gray floor 0.955",
        licence="code MIT; weights trained on research-use photos, see weights/igray_s4w96.invisible_v2.md",
        gray_floor=0.955,
    ),
    WeightsEntry(
        name="igray_s4w96.photos789_v1",
        file="igray_s4w96_photos789_v1-9a9af3f1.safetensors",
        sha256="9a9af3f15fd568e4c2721851beacf4aeda927a998feca4eefbe7d9196cb675be",
        config={"scale": 4, "width": 96, "encoder_blocks": 4, "decoder_blocks": 4, "max_residual": 0.25,
                "carrier_gain": 0.25},
        divisibility=4,
        receptive_field=44,
        description="colour first: 4x4-block nets (96 ch, 4+4 residual blocks) trained on 789 photos "
        "(BSDS500, COCO, Sun-Hays 80, Urban100); invgray 0.1's default",
        licence="code MIT; weights trained on research-use photos, see weights/igray_s4w96.photos789_v1.md",
    ),
]


def list_models() -> list[WeightsEntry]:
    return list(REGISTRY)


def default_model_name() -> str | None:
    return REGISTRY[0].name if REGISTRY else None


def jpeg_model_name() -> str | None:
    """The shipped model for JPEG grays (the first trained with JPEG in the loop), or None."""
    return next((e.name for e in REGISTRY if e.jpeg_quality is not None), None)


def find_entry(name: str) -> WeightsEntry:
    """The registry entry called ``name``, or a one-line error listing the known names."""
    for entry in REGISTRY:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in REGISTRY) or "none"
    raise InvgrayError(f"unknown model '{name}' (shipped: {known}); see `invgray models` or pass --weights PATH")


def weights_dir() -> Path:
    """Folder of the shipped weights, found without network.

    Order: $INVGRAY_WEIGHTS_DIR; ``invgray_cli/weights`` package data (regular install);
    the repository's top-level ``weights/`` beside the package (source checkout, editable install).
    """
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env)
    packaged = resources.files("invgray_cli") / "weights"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "weights"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_weights(model: InvertibleGray, path: str | Path, name: str | None = None) -> str:
    """Write ``model`` as an invgray safetensors file; returns the sha256 hex of the file.

    ``name`` (optional, ``arch.tag``) is recorded in the metadata so ``--weights`` files
    can report what they are.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": WEIGHTS_FORMAT, "config": json.dumps(model.config.to_dict(), sort_keys=True)}
    if name:
        metadata["name"] = name
    tmp = path.with_name(f".{path.name}.part")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes 0600; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return file_sha256(path)


def _read_weights(path: Path) -> tuple[dict, dict]:
    """(metadata, tensors) of a safetensors file, or a one-line error."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InvgrayError(f"{path} is not a readable safetensors weights file ({exc})") from None
    return metadata, tensors


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InvgrayError(f"weights file {path} does not exist")
    if not path.is_file():
        raise InvgrayError(f"weights path {path} is not a file")


def save_module(model, path: str | Path, fmt: str, **metadata: str | None) -> str:
    """Write a net with a ``config`` (a colouriser, a code detector) as safetensors: its tensors,
    ``fmt``, its config as JSON and any other ``metadata`` given; returns the file's sha256."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fields = {"format": fmt, "config": json.dumps(model.config.to_dict(), sort_keys=True)}
    fields.update({key: value for key, value in metadata.items() if value})
    save_file(tensors, str(path), metadata=fields)
    Path(path).chmod(0o644)
    return file_sha256(Path(path))


def load_module(path: str | Path, fmt: str, build, what: str, expected_sha256: str | None = None):
    """(net, metadata, sha256) of a file ``save_module`` wrote: checked against ``expected_sha256``
    (prefix) and ``fmt``, the net rebuilt by ``build(config_dict)``; one-line errors naming ``what``."""
    path = Path(path)
    _check_file(path)
    digest = file_sha256(path)
    if expected_sha256 and not digest.startswith(expected_sha256.lower()):
        raise InvgrayError(f"{what} {path} has sha256 {digest[:16]}… but {expected_sha256[:16]}… was "
                           "expected: the file is corrupt or was tampered with")
    metadata, tensors = _read_weights(path)
    if metadata.get("format") != fmt:
        raise InvgrayError(f"{path} is not an invgray {what} file (metadata format {metadata.get('format')!r})")
    try:
        model = build(json.loads(metadata["config"]))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InvgrayError(f"{path} does not match its own {what} config ({str(exc).splitlines()[0]})") from None
    return model.eval().requires_grad_(False), metadata, digest


@dataclass(frozen=True)
class CompanionEntry:
    """A small net shipped for one codec model (its code detector, its frame judge)."""

    model_sha256: str  # the codec model it serves
    file: str  # in weights_dir()
    sha256: str


def companion_entry(entries: list[E], model_sha256: str) -> E | None:
    """The entry serving the codec model with ``model_sha256`` (nothing loaded), or None."""
    return next((e for e in entries if e.model_sha256 == model_sha256), None)


def shipped_companion(entries: list[CompanionEntry], model_sha256: str, what: str,
                      load: Callable[[Path, str], T]) -> T | None:
    """``load(path, sha256)`` of the entry serving the codec model with ``model_sha256``, or None if
    it has none; a listed file that is missing is an error naming ``what``."""
    entry = companion_entry(entries, model_sha256)
    if entry is None:
        return None
    path = weights_dir() / entry.file
    if not path.is_file():
        raise InvgrayError(f"shipped {what} is missing: {path}; reinstall invgray")
    return load(path, entry.sha256)


def load_weights_with_info(path: str | Path, expected_sha256: str | None = None) -> tuple[InvertibleGray, ModelInfo]:
    """Load an invgray weights file (checked against ``expected_sha256``, full or prefix)."""
    path = Path(path)
    _check_file(path)
    digest = file_sha256(path)
    if expected_sha256 and not digest.startswith(expected_sha256.lower()):
        raise InvgrayError(
            f"weights file {path} has sha256 {digest[:16]}… but {expected_sha256[:16]}… was expected: "
            "the file is corrupt or was tampered with; restore it (e.g. `git checkout weights/`)"
        )
    metadata, tensors = _read_weights(path)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise InvgrayError(f"{path} is not an invgray weights file (metadata format {metadata.get('format')!r})")
    try:
        config = NetConfig(**json.loads(metadata["config"]))
        model = InvertibleGray(config)
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InvgrayError(f"{path} does not match its own architecture config ({str(exc).splitlines()[0]})") from None
    model.eval().requires_grad_(False)
    info = ModelInfo(
        name=metadata.get("name") or f"file:{path.stem}",
        sha256=digest,
        divisibility=model.divisibility,
        receptive_field=model.receptive_field,
        path=path,
    )
    return model, info


def load_weights(path: str | Path, expected_sha256: str | None = None) -> InvertibleGray:
    return load_weights_with_info(path, expected_sha256)[0]


def shipped_file_name(name: str, sha256: str) -> str:
    """``igray.s2w48`` + sha -> ``igray_s2w48-1a2b3c4d.safetensors`` (the sha prefix is checked on load)."""
    return f"{name.replace('.', '_')}-{sha256[:8]}.safetensors"


def make_entry(path: str | Path, name: str, description: str, licence: str) -> WeightsEntry:
    """The registry entry for a weights file (to paste into REGISTRY when shipping it)."""
    if not re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", name):
        raise InvgrayError(f"model name '{name}' must look like arch.tag (lower case letters, digits, _)")
    model, info = load_weights_with_info(path)
    return WeightsEntry(
        name=name, file=shipped_file_name(name, info.sha256), sha256=info.sha256, config=model.config.to_dict(),
        divisibility=info.divisibility, receptive_field=info.receptive_field, description=description, licence=licence,
    )


def resolve_model(name: str | None = None, weights_path: str | Path | None = None) -> tuple[InvertibleGray, ModelInfo]:
    """The model to run: a user's ``weights_path``, else the shipped ``name``, else the default."""
    if weights_path is not None:
        model, info = load_weights_with_info(weights_path)
        shipped = next((e for e in REGISTRY if e.sha256 == info.sha256), None)
        if shipped is not None:  # a shipped file named by path is that model, its gray floor included
            info = replace(info, name=shipped.name, gray_floor=shipped.gray_floor, jpeg_quality=shipped.jpeg_quality)
        return model, info
    if name is None:
        name = default_model_name()
        if name is None:
            raise InvgrayError("no shipped weights; pass --weights PATH")
    entry = find_entry(name)
    path = weights_dir() / entry.file
    if not path.is_file():
        raise InvgrayError(f"shipped weights for '{name}' are missing: {path}; reinstall invgray or pass --weights PATH")
    model, info = load_weights_with_info(path, entry.sha256)
    return model, ModelInfo(entry.name, info.sha256, info.divisibility, info.receptive_field, path, entry.gray_floor,
                            entry.jpeg_quality)


# Edge decoders: the decoder of a codec model fine-tuned on grays cut after encoding (`invgray train
# --edge-band`, its encoder untouched), for the lines beside a crop's cut edge (see codec.py). Stored
# as a whole weights file of the same net.
@dataclass(frozen=True)
class EdgeDecoderEntry(CompanionEntry):
    all_cuts: bool = False  # trained with --edge-all-cuts: serves every cut edge, not only a top or left off the grid


EDGE_DECODERS: list[EdgeDecoderEntry] = [
    EdgeDecoderEntry(  # igray_s4w96.invisible_v2 (model card: weights/igray_s4w96.invisible_v2.md)
        model_sha256="5ee4bae484eda4cd6ea76b76784834f4b887df73bdf98582deb5f7183bc137e1",
        file="igray_s4w96_invisible_v2.edges-16862b64.safetensors",
        sha256="16862b6481a07b0924b3683bf43b620fbdae1cfbadba4afcc4c8840501540235",
        all_cuts=True,
    ),
]


@functools.lru_cache(maxsize=4)
def shipped_edge_decoder(model_sha256: str) -> EdgeDecoder | None:
    """The shipped edge decoder for the codec model with this sha256 (on the CPU), or None if it has none."""
    net = shipped_companion(EDGE_DECODERS, model_sha256, "edge decoder", load_weights)
    return None if net is None else EdgeDecoder(net, companion_entry(EDGE_DECODERS, model_sha256).all_cuts)


# JPEG decoders: colour from a JPEG gray's luma and block code (see blockcode.py), one per codec
# model, trained on its grays (`invgray train-jpeg-decoder`). Without one, decode lays the block
# code's coarse colour on the gray as it is.
JPEG_DECODERS: list[CompanionEntry] = [
    CompanionEntry(  # igray_s4w96.invisible_v2 (model card: weights/igray_s4w96.invisible_v2.md)
        model_sha256="5ee4bae484eda4cd6ea76b76784834f4b887df73bdf98582deb5f7183bc137e1",
        file="igray_s4w96_invisible_v2.jpeg-8f7c1e6f.safetensors",
        sha256="8f7c1e6f5d286cd06241f668efcc7fb236b3811ac6b6383ddecb6a5683f0d614",
    ),
]


@functools.lru_cache(maxsize=4)
def shipped_jpeg_decoder(model_sha256: str):
    """The shipped JPEG decoder for the codec model with this sha256 (on the CPU), or None if it has none."""
    from invgray_cli.models.jpeg_decoder import load_jpeg_decoder

    return shipped_companion(JPEG_DECODERS, model_sha256, "JPEG decoder", load_jpeg_decoder)
