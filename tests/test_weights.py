"""Weights files: one atomic save and one checked load for every kind of net. A file's metadata is
untrusted: its config is checked against stated bounds and its tensors' shapes before any net is
built, and tensors that are not finite are refused; each a one-line error."""
from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cli_helpers import assert_one_line_error, photo, python_alone, run
from invgray_cli.errors import InvgrayError
from invgray_cli.models import net as net_module
from invgray_cli.models.colorizer import Colorizer, ColorizerConfig
from invgray_cli.models.detector import CodeDetector, DetectorConfig
from invgray_cli.models.frame_judge import FrameJudge, FrameJudgeConfig
from invgray_cli.models.jpeg_decoder import JpegDecoder, JpegDecoderConfig
from invgray_cli.models.kinds import (CODEC_NET, COLORIZER_NET, DETECTOR_NET, FRAME_JUDGE_NET, JPEG_DECODER_NET,
                                      NET_KINDS)
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.models.weights import file_sha256, load_weights, save_weights, sha256_matches
from invgray_cli.models.zoo import entries

TINY_CODEC = NetConfig(scale=2, width=8, encoder_blocks=1, decoder_blocks=1)
TINY_NETS = {  # one tiny random net of each kind
    CODEC_NET: lambda: InvertibleGray(TINY_CODEC),
    DETECTOR_NET: lambda: CodeDetector(DetectorConfig(period=2, width=4)),
    FRAME_JUDGE_NET: lambda: FrameJudge(FrameJudgeConfig(width=4)),
    JPEG_DECODER_NET: lambda: JpegDecoder(JpegDecoderConfig(width=4, levels=1, bottom_blocks=1, fine_planes=True)),
    COLORIZER_NET: lambda: Colorizer(ColorizerConfig(width=4, levels=1, bottom_blocks=1)),
}


def _tiny(kind):
    torch.manual_seed(0)
    return TINY_NETS[kind]()


def _write(path: Path, tensors: dict, config: object, file_format: str = CODEC_NET.file_format) -> Path:
    """A safetensors file with these tensors and metadata, as a hostile tool could write it."""
    text = config if isinstance(config, str) else json.dumps(config)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": file_format, "config": text})
    return path


def _codec_file(path: Path, **config: object) -> Path:
    """The tiny codec net's tensors under its config changed by ``config``."""
    return _write(path, _tiny(CODEC_NET).state_dict(), {**TINY_CODEC.to_dict(), **config})


def forbid_building_nets(monkeypatch) -> None:
    """From here on, fail the test if a codec net is built at all (even on the meta device)."""
    def refuse(self, config=None):
        raise AssertionError("a net was built from a config that should have been refused")

    monkeypatch.setattr(net_module.InvertibleGray, "__init__", refuse)


@pytest.mark.parametrize("kind", NET_KINDS, ids=lambda kind: kind.what)
def test_every_kind_round_trips_through_the_one_save_and_load(kind, tmp_path):
    net = _tiny(kind)
    path = tmp_path / "net.safetensors"
    previous = os.umask(0o022)
    try:
        sha = save_weights(net, path, name="tiny.net", model_sha256="ab" * 32)
    finally:
        os.umask(previous)
    assert sha == file_sha256(path) and re.fullmatch(r"[0-9a-f]{64}", sha)
    assert path.stat().st_mode & 0o777 == 0o644 and list(tmp_path.iterdir()) == [path]  # no .part left
    loaded = load_weights(path, kind, sha[:8])
    assert type(loaded.net) is type(net) and loaded.net.config == net.config and loaded.sha256 == sha
    assert loaded.name == "tiny.net" and loaded.metadata["model_sha256"] == "ab" * 32
    assert loaded.metadata["format"] == kind.file_format
    assert not loaded.net.training and not any(p.requires_grad for p in loaded.net.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value), key


def test_a_failed_save_leaves_the_old_file_and_no_part(tmp_path, monkeypatch):
    import safetensors.torch

    path = tmp_path / "w.safetensors"
    sha = save_weights(_tiny(CODEC_NET), path)

    def disk_full(*args, **kwargs):
        Path(args[1]).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        save_weights(_tiny(DETECTOR_NET), path)
    assert file_sha256(path) == sha and list(tmp_path.iterdir()) == [path]


def test_a_file_of_another_kind_is_named(tmp_path):
    path = tmp_path / "d.safetensors"
    save_weights(_tiny(DETECTOR_NET), path)
    with pytest.raises(InvgrayError, match="holds an invgray code detector, not an invgray codec model"):
        load_weights(path, CODEC_NET)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "\x1b]0;owned\x07"})
    with pytest.raises(InvgrayError, match=r"not an invgray codec model file \(metadata format '\\x1b\]0;owned\\x07'\)"):
        load_weights(path, CODEC_NET)


def test_checksums_and_their_prefixes(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = save_weights(_tiny(CODEC_NET), path)
    assert sha256_matches(sha, sha[:8].upper()) and sha256_matches(sha, sha)
    for prefix in ("", sha[:7], "0" * 8, sha[:8] + "z"):  # empty, too short, another file's, not hex
        assert not sha256_matches(sha, prefix)
        with pytest.raises(InvgrayError, match="corrupt or was tampered with"):
            load_weights(path, CODEC_NET, prefix)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(InvgrayError, match=r"w\.safetensors has sha256 .* but .* was expected"):
        load_weights(path, CODEC_NET, sha)


@pytest.mark.parametrize("content", [b"hello, not weights", b"", b"\xff" * 8 + b"{}"])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(InvgrayError, match="not a readable safetensors weights file"):
        load_weights(path)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(InvgrayError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors")
    with pytest.raises(InvgrayError, match="not a file"):
        load_weights(tmp_path)


@pytest.mark.parametrize("config,message", [
    ({"encoder_blocks": 10**7}, r"'encoder_blocks' must be in 0\.\.64 \(the file says 10000000\)"),
    ({"decoder_blocks": -1}, r"'decoder_blocks' must be in 0\.\.64"),
    ({"scale": 0}, r"'scale' must be one of 1, 2, 4, 8"),
    ({"width": 10**6}, r"'width' must be in 1\.\.512"),
    ({"width": True}, r"'width' must be a whole number"),
    ({"width": 8.0}, r"'width' must be a whole number"),
    ({"max_residual": 0}, r"'max_residual' must be in \(0, 1\]"),
    ({"carrier_gain": float("nan")}, r"'carrier_gain' must be a finite number"),
    ({"carriers": [[5, 0], [0, 2]]}, r"'carriers' must be null or two \[row, column\] pairs"),
    ({"carriers": [[3, 3], [2, 3]]}, r"'carriers' must stay below its scale \(2\)"),
    ({"depth": 3}, r"unknown field 'depth'"),
])
def test_a_config_out_of_bounds_is_refused_before_any_net_is_built(config, message, tmp_path, monkeypatch):
    path = _codec_file(tmp_path / "hostile.safetensors", **config)
    forbid_building_nets(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scale 0 once leaked a torch UserWarning
        with pytest.raises(InvgrayError, match=message) as refused:
            load_weights(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


def test_huge_encoder_blocks_cost_nothing(tmp_path):
    """`"encoder_blocks": 10**7` once built for 33 s and 7.4 GB; now the field is refused on sight."""
    path = _codec_file(tmp_path / "hostile.safetensors", encoder_blocks=10**7)
    started = time.perf_counter()
    with pytest.raises(InvgrayError, match="encoder_blocks"):
        load_weights(path)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("config,message", [
    ("[" * 5000 + "]" * 5000, "nests deeper than"),
    ("[1, 2]", "config is not a JSON object"),
    ("{not json", "config is not valid JSON"),
    ('"' + "x" * (2 << 20) + '"', "config is too large"),
])
def test_a_config_that_is_not_a_small_json_object_is_refused(config, message, tmp_path, monkeypatch):
    path = _write(tmp_path / "w.safetensors", _tiny(CODEC_NET).state_dict(), config)
    forbid_building_nets(monkeypatch)
    with pytest.raises(InvgrayError, match=message):
        load_weights(path)


def test_tensors_that_do_not_fit_the_config_are_refused_before_the_net_gets_memory(tmp_path):
    state = _tiny(CODEC_NET).state_dict()
    wider = {**TINY_CODEC.to_dict(), "width": 16}
    with pytest.raises(InvgrayError, match=r"tensor encoder\.0\.weight is \(8, 12, 3, 3\), its config makes "
                                           r"\(16, 12, 3, 3\)"):
        load_weights(_write(tmp_path / "a.safetensors", state, wider))
    missing = {k: v for k, v in state.items() if k != "decoder_linear.bias"}
    with pytest.raises(InvgrayError, match="lacks tensor decoder_linear.bias"):
        load_weights(_write(tmp_path / "b.safetensors", missing, TINY_CODEC.to_dict()))
    extra = {**state, "\x1b[2Jextra": torch.zeros(1)}
    with pytest.raises(InvgrayError, match=r"unexpected tensor '\\x1b\[2Jextra'"):
        load_weights(_write(tmp_path / "c.safetensors", extra, TINY_CODEC.to_dict()))
    as_integers = {**state, "encoder.0.bias": torch.zeros(8, dtype=torch.int64)}
    with pytest.raises(InvgrayError, match="encoder.0.bias holds I64, not floating-point weights"):
        load_weights(_write(tmp_path / "d.safetensors", as_integers, TINY_CODEC.to_dict()))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused(bad, tmp_path):
    state = _tiny(CODEC_NET).state_dict()
    state["decoder.0.weight"] = state["decoder.0.weight"].clone()
    state["decoder.0.weight"][0, 0, 1, 1] = bad  # one broken value among many
    path = _write(tmp_path / "w.safetensors", state, TINY_CODEC.to_dict())
    with pytest.raises(InvgrayError, match=r"tensor decoder\.0\.weight holds NaN or infinite values"):
        load_weights(path)


@pytest.mark.parametrize("kind,config,message", [
    (DETECTOR_NET, {"period": 3}, "'period' must be one of 1, 2, 4, 8"),
    (FRAME_JUDGE_NET, {"width": 0}, r"'width' must be in 1\.\.512"),
    (JPEG_DECODER_NET, {"fine_planes": 1}, "'fine_planes' must be true or false"),
    (JPEG_DECODER_NET, {"bottom_blocks": 65}, r"'bottom_blocks' must be in 0\.\.64"),
    (COLORIZER_NET, {"levels": 9}, r"'levels' must be in 0\.\.5"),
    (COLORIZER_NET, {"width": 1000}, r"'width' must be in 1\.\.256"),
], ids=lambda value: value.what if hasattr(value, "what") else None)
def test_every_kind_checks_its_fields(kind, config, message, tmp_path):
    net = _tiny(kind)
    path = _write(tmp_path / "w.safetensors", net.state_dict(), {**net.config.to_dict(), **config}, kind.file_format)
    with pytest.raises(InvgrayError, match=f"{kind.what} config field {message}"):
        load_weights(path, kind)


def test_the_bounds_admit_every_shipped_config():
    for entry in entries():
        assert entry.role.kind.config_from(entry.config, entry.name).to_dict() == entry.config, entry.name


def test_encode_with_a_hostile_weights_file_says_so_in_one_line(tmp_path):
    path = _codec_file(tmp_path / "hostile.safetensors", encoder_blocks=10**7)
    photo(tmp_path / "a.png")
    assert_one_line_error(run("encode", tmp_path / "a.png", "--weights", path), 1, "hostile.safetensors",
                          "encoder_blocks")
    assert not (tmp_path / "a.gray.png").exists()


def test_loading_every_shipped_net_imports_no_compiler():
    """Building a net on the meta device to load it into must not run ops that pull in
    torch._dynamo (and sympy): that took 0.9 s of every command's start. A process of its own,
    since another test may have imported it already."""
    script = (
        "import sys\n"
        "import torch\n"
        "before = {m for m in ('torch._dynamo', 'sympy') if m in sys.modules}\n"
        "from invgray_cli.models.zoo import entries, load_entry\n"
        "for entry in entries():\n"
        "    load_entry(entry)\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules and m not in before))\n")
    assert python_alone(script).strip() == "[]"
