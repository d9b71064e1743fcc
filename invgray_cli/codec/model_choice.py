"""Stage 3 (codec): which model decodes a gray: the user's ``--weights``/``--model``, else the one its chunk names,
else the default model (with a warning); and a warning when the chunk names other weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from invgray_cli.codec.nets import Codec
from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import SHA_PREFIX_LENGTH, ChunkInfo, parse_chunk
from invgray_cli.models.zoo import ModelInfo, default_model_name, find_entry

NO_CHUNK_WARNING = "has no invgray chunk (re-saved by another tool, or not made by invgray encode); decoding with {model}"


@dataclass(frozen=True)
class ModelSpec:
    """Which weights to load (hashable, so callers can cache one Codec per spec)."""

    name: str | None = None
    weights: Path | None = None


def _shipped_model_of(chunk: ChunkInfo) -> ModelSpec:
    try:
        entry = find_entry(chunk.model)
    except InvgrayError:
        raise InvgrayError(
            f"the gray was encoded with model '{chunk.model}', which this invgray does not ship; "
            "pass --weights PATH to its weights file"
        ) from None
    if not entry.sha256.startswith(chunk.sha256):
        raise InvgrayError(
            f"the gray was encoded with '{chunk.model}' weights {chunk.sha256}, but the shipped ones are "
            f"{entry.sha256[:SHA_PREFIX_LENGTH]}; pass --weights PATH to the matching file"
        )
    return ModelSpec(name=chunk.model)


def choose_model(text: dict[str, str] | None, model: str | None = None,
                 weights: str | Path | None = None) -> tuple[ModelSpec, str | None]:
    """The weights to decode a gray with, and a warning for the user (or None).

    Explicit ``weights``/``model`` win; else the model named in the chunk (its sha256 prefix must
    match the shipped file); else the default model, with a warning. ``text`` None means the input
    could not carry a chunk (a bare array): no warning then.
    """
    chunk = parse_chunk(text)
    if weights is not None:
        spec = ModelSpec(weights=Path(weights))
    elif model is not None:
        spec = ModelSpec(name=model)
    elif chunk is not None:
        return _shipped_model_of(chunk), None
    else:
        default = default_model_name()
        if default is None:
            raise InvgrayError("no shipped weights; pass --weights PATH")
        spec = ModelSpec(name=default)
    if text is not None and chunk is None:
        return spec, NO_CHUNK_WARNING.format(model=spec.name and f"model '{spec.name}'" or f"weights {spec.weights}")
    return spec, None


def chunk_mismatch_warning(text: dict[str, str] | None, info: ModelInfo) -> str | None:
    """A warning when the gray's chunk names other weights than the ones about to decode it."""
    chunk = parse_chunk(text)
    if chunk is None or info.sha256.startswith(chunk.sha256):
        return None
    return (
        f"was encoded with '{chunk.model}' ({chunk.sha256}) but is decoded with '{info.name}' "
        f"({info.sha256[:SHA_PREFIX_LENGTH]}); colours may be wrong"
    )


def codec_for_gray(text: dict[str, str] | None, weights: str | Path | None = None, device: str = "auto",
                   tile: int | None = None, model: str | None = None, precision: str = "auto") -> tuple[Codec, str | None]:
    """Load the codec that should decode a gray with file ``text``; returns (codec, warning or None)."""
    spec, warning = choose_model(text, model=model, weights=weights)
    codec = Codec.load(spec.name, spec.weights, device=device, tile=tile, precision=precision)
    return codec, warning or chunk_mismatch_warning(text, codec.info)
