"""Weights registry: safe save/load, sha256 checks, name resolution, shipped entries."""
import json
import re
from pathlib import Path

import pytest
import torch

from invgray_cli.errors import InvgrayError
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.models import zoo as registry
from invgray_cli.models.zoo import (
    WeightsEntry,
    default_model_name,
    file_sha256,
    list_models,
    load_weights,
    load_weights_with_info,
    resolve_model,
    save_weights,
    weights_dir,
)


@pytest.fixture
def weights_file(tmp_path, tiny_model) -> tuple[Path, str]:
    path = tmp_path / "tiny.safetensors"
    return path, save_weights(tiny_model, path, name="igray.tiny")


def _entry(path: Path, sha: str, name: str = "igray.tiny") -> WeightsEntry:
    return WeightsEntry(name, path.name, sha, NetConfig(width=8, encoder_blocks=1, decoder_blocks=1).to_dict(), 2, 10, "test", "MIT")


@pytest.fixture
def registered(weights_file, monkeypatch):
    path, sha = weights_file
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(path.parent))
    monkeypatch.setattr(registry, "REGISTRY", [_entry(path, sha), _entry(path, sha, "igray.other")])
    return path, sha


def test_save_load_round_trip(weights_file, tiny_model):
    path, sha = weights_file
    assert sha == file_sha256(path) and re.fullmatch(r"[0-9a-f]{64}", sha)
    model, info = load_weights_with_info(path, expected_sha256=sha[:8])
    assert info.name == "igray.tiny" and info.sha256 == sha and info.divisibility == 2
    assert info.receptive_field == model.receptive_field
    assert model.config == tiny_model.config and not model.training
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.encode(x), tiny_model.encode(x))
    assert not list(path.parent.glob(".*.part"))


def test_metadata_format(weights_file, tiny_model):
    from safetensors import safe_open

    with safe_open(str(weights_file[0]), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == "invgray-weights/1"
    assert NetConfig(**json.loads(meta["config"])) == tiny_model.config


def test_tampered_weights_are_refused(weights_file):
    path, sha = weights_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(InvgrayError, match=r"tiny\.safetensors.*corrupt or was tampered"):
        load_weights(path, expected_sha256=sha)


def test_wrong_expected_prefix(weights_file):
    with pytest.raises(InvgrayError, match="tampered"):
        load_weights(weights_file[0], expected_sha256="00000000")


@pytest.mark.parametrize(
    "content,message",
    [(b"hello, not weights", "not a readable safetensors"), (b"", "not a readable safetensors")],
)
def test_not_a_weights_file(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(InvgrayError, match=message):
        load_weights(path)


def test_foreign_safetensors_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(InvgrayError, match="not an invgray weights file"):
        load_weights(path)


def test_config_state_mismatch_refused(tmp_path, tiny_model):
    from safetensors.torch import save_file

    path = tmp_path / "mismatch.safetensors"
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "invgray-weights/1", "config": json.dumps(NetConfig().to_dict())})
    with pytest.raises(InvgrayError, match="does not match its own architecture"):
        load_weights(path)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(InvgrayError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors")
    with pytest.raises(InvgrayError, match="not a file"):
        load_weights(tmp_path)


def test_empty_registry_says_pass_weights(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", [])
    assert default_model_name() is None and list_models() == []
    with pytest.raises(InvgrayError, match=r"no shipped weights; pass --weights PATH"):
        resolve_model()


def test_resolve_weights_path_wins(weights_file, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", [])
    model, info = resolve_model("whatever.ignored", weights_file[0])
    assert isinstance(model, InvertibleGray) and info.name == "igray.tiny"


def test_resolve_registered(registered):
    path, sha = registered
    assert default_model_name() == "igray.tiny"
    _, info = resolve_model()
    assert info.name == "igray.tiny" and info.sha256 == sha and info.path == path
    assert resolve_model("igray.other")[1].name == "igray.other"
    with pytest.raises(InvgrayError, match=r"unknown model 'x\.y' \(shipped: igray\.tiny, igray\.other\)"):
        resolve_model("x.y")


def test_registered_file_tampered_or_missing(registered):
    path, _ = registered
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(InvgrayError, match="tampered"):
        resolve_model()
    path.unlink()
    with pytest.raises(InvgrayError, match="missing"):
        resolve_model()


def test_weights_dir_is_the_repo_folder(monkeypatch):
    monkeypatch.delenv(registry.WEIGHTS_DIR_ENV, raising=False)
    assert weights_dir().resolve() == Path(__file__).resolve().parents[1] / "weights"


@pytest.mark.parametrize("entry", registry.REGISTRY, ids=lambda e: e.name)
def test_shipped_entries_are_consistent(entry, monkeypatch):
    monkeypatch.delenv(registry.WEIGHTS_DIR_ENV, raising=False)
    assert re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", entry.name)
    assert entry.sha256[:8] in entry.file and (weights_dir() / entry.file).is_file()
    model, info = resolve_model(entry.name)
    assert info.sha256 == entry.sha256 and model.config == NetConfig(**entry.config)
    assert entry.divisibility == model.divisibility and entry.receptive_field == model.receptive_field
    assert entry.description and entry.licence


def test_make_entry_for_shipping(weights_file):
    from invgray_cli.models.zoo import make_entry, shipped_file_name

    path, sha = weights_file
    entry = make_entry(path, "igray.tiny", "a tiny test net", "MIT")
    assert entry.file == f"igray_tiny-{sha[:8]}.safetensors" == shipped_file_name("igray.tiny", sha)
    assert entry.sha256 == sha and NetConfig(**entry.config).width == 8
    assert (entry.divisibility, entry.receptive_field) == (2, 10)
    with pytest.raises(InvgrayError, match="arch.tag"):
        make_entry(path, "Tiny Net", "x", "MIT")
