"""The code detector, and what decode does with its reading: decode, or fall back to colour guessed."""
from __future__ import annotations

import json

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import TINY_NAME, assert_one_line_error, photo, run
from invgray_cli.codec import decode as decode_module, nets as nets_module
from invgray_cli.codec.nets import Codec
from invgray_cli.api import decode
from invgray_cli.codec.decode import restore
from invgray_cli.errors import InvgrayError
from invgray_cli.models.detector import CodeDetector, DetectorConfig, read_code, window_origins
from invgray_cli.models.kinds import DETECTOR_NET
from invgray_cli.models.weights import file_sha256, load_weights, save_weights
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.models.zoo import ModelInfo
from invgray_cli.codec.decode import decode_array
from cli_helpers import restore_array


class FixedDetector(CodeDetector):
    """A detector that reads the code with the same probability in every gray."""

    def __init__(self, period: int, probability: float) -> None:
        super().__init__(DetectorConfig(period=period, width=2))
        self.logit = float(np.log(probability / (1 - probability)))

    def image_logit(self, gray: torch.Tensor) -> torch.Tensor:
        return torch.full((gray.shape[0],), self.logit)


@pytest.fixture
def tiny_codec() -> Codec:
    """A random net with 4-px blocks, as the shipped ones (so a shift and its opposite differ)."""
    torch.manual_seed(0)
    net = InvertibleGray(NetConfig(scale=4, width=8, encoder_blocks=1, decoder_blocks=1))
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.1)
    info = ModelInfo("tiny", "", net.divisibility, net.receptive_field)
    return Codec.from_model(net, info, device="cpu", tile=0)


def test_windows_sit_on_the_grid_and_inside_the_image():
    for height, width in ((40, 50), (128, 128), (301, 1025), (2000, 3000)):
        origins = window_origins(height, width, 4)
        assert 1 <= len(origins) <= 16
        assert all(y % 4 == 0 and x % 4 == 0 for y, x in origins)
        assert all(y + min(128, height) <= height and x + min(128, width) <= width for y, x in origins)


def test_restore_follows_the_reading(tiny_codec, monkeypatch):
    monkeypatch.setattr(decode_module, "colorizer_ships", lambda: False)  # as if no colouriser shipped
    gray = np.random.default_rng(1).integers(0, 256, (40, 44), dtype=np.uint8)
    plain = replace(tiny_codec, detector=FixedDetector(tiny_codec.model.divisibility, 0.01))
    with pytest.raises(InvgrayError, match="no colour code.*--no-fallback"):
        restore_array(plain, gray, has_chunk=False, fallback=False)
    guessed = restore_array(plain, gray, has_chunk=False)
    assert not guessed.coded and "guesses" in guessed.warning and "confidence 0.01" in guessed.warning
    class Unread(CodeDetector):
        def image_logit(self, gray: torch.Tensor) -> torch.Tensor:
            raise AssertionError("a gray with a chunk costs no detection")

    assert restore_array(replace(tiny_codec, detector=Unread(DetectorConfig(4, 2))), gray, has_chunk=True).coded
    chunked = restore_array(plain, gray, has_chunk=True)  # the chunk says it was made by invgray: decode it
    assert chunked.coded and chunked.warning is None
    assert np.array_equal(chunked.rgb, decode_array(tiny_codec, gray))
    coded = restore_array(replace(tiny_codec, detector=FixedDetector(tiny_codec.model.divisibility, 0.9)), gray)
    assert coded.coded and coded.warning is None and np.array_equal(coded.rgb, chunked.rgb)
    unknown = restore_array(tiny_codec, gray, has_chunk=False)  # no detector for this model: decode as before
    assert unknown.coded and unknown.warning is None
    tiny = np.ascontiguousarray(gray[:20, :30])  # too few blocks to tell: decoded as before
    assert read_code(plain.code_detector(), tiny) is None and restore_array(plain, tiny, has_chunk=False).coded
    with pytest.raises(ValueError, match="uint8"):
        restore_array(plain, gray.astype(np.float32), has_chunk=False)


def test_no_code_falls_back_to_the_colouriser(tiny_codec, monkeypatch):
    gray = np.random.default_rng(2).integers(0, 256, (40, 44), dtype=np.uint8)

    class Colouriser:
        name = "fake.colorizer"

        def colorize_array(self, array: np.ndarray) -> np.ndarray:
            return np.stack([array, array // 2, array // 3], axis=-1)

    monkeypatch.setattr(decode_module, "fallback_colorizer", lambda device: Colouriser())
    plain = replace(tiny_codec, detector=FixedDetector(tiny_codec.model.divisibility, 0.01))
    restored = restore_array(plain, gray, has_chunk=False)
    assert restored.model == "fake.colorizer" and "colourised by 'fake.colorizer'" in restored.warning
    assert np.array_equal(restored.rgb[..., 1], gray // 2)
    with pytest.warns(UserWarning, match="colourised by"):
        out = decode(gray, plain)
    assert np.array_equal(out, restored.rgb)


def test_decode_no_fallback_refuses_a_plain_gray_in_one_line(registered, tmp_path, monkeypatch):
    from invgray_cli.models import detector as detector_module

    monkeypatch.setattr(nets_module, "shipped_detector", lambda sha: FixedDetector(2, 0.01))
    monkeypatch.setattr(decode_module, "colorizer_ships", lambda: False)
    source = tmp_path / "plain.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 48), dtype=np.uint8)).save(source)
    assert_one_line_error(run("decode", source, "-o", tmp_path / "out.png", "--no-fallback", "--device", "cpu"),
                          1, "plain.png", "no colour code")
    result = run("decode", source, "-o", tmp_path / "out.png", "--device", "cpu")
    assert result.exit_code == 0 and "no colour code" in result.stderr and "guesses" in result.stderr
    assert detector_module.CODE_THRESHOLD == 0.5


def test_detector_file_round_trip(tmp_path):
    torch.manual_seed(0)
    detector = CodeDetector(DetectorConfig(period=2, width=4))
    save_weights(detector, tmp_path / "d.safetensors", model_sha256="ab" * 32)
    loaded = load_weights(tmp_path / "d.safetensors", DETECTOR_NET)
    assert loaded.metadata["model_sha256"] == "ab" * 32 and loaded.net.config == detector.config
    gray = np.random.default_rng(0).integers(0, 256, (50, 70), dtype=np.uint8)
    assert read_code(loaded.net, gray) == read_code(detector.eval(), gray)
    with pytest.raises(InvgrayError, match="sha256"):
        load_weights(tmp_path / "d.safetensors", DETECTOR_NET, "00" * 32)


def test_train_detector_runs_and_exports(registered, tmp_path):
    folder = tmp_path / "photos"
    for seed in range(2):
        photo(folder / f"{seed}.png", 80, 72, seed=seed)
    result = run("train-detector", folder, "--val", folder, "--out", tmp_path / "d.ckpt", "--steps", "3",
                 "--batch", "4", "--crop", "24", "--width", "4", "--val-every", "3", "--device", "cpu",
                 "--export", tmp_path / "d.safetensors")
    assert result.exit_code == 0, result.stderr
    assert "right_coded" in result.stderr and "right_cropped" in result.stderr and "right_half" in result.stderr
    loaded = load_weights(tmp_path / "d.safetensors", DETECTOR_NET)
    assert loaded.metadata["model_sha256"] == file_sha256(registered) and loaded.net.config.period == 2


def test_info_shows_the_code_confidence(registered, tmp_path, monkeypatch):
    monkeypatch.setattr(nets_module, "shipped_detector", lambda sha: FixedDetector(2, 0.2))
    source = tmp_path / "plain.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (40, 48), dtype=np.uint8)).save(source)
    result = run("info", source)
    assert result.exit_code == 0 and "colour code: none that" in result.stdout and "confidence 0.20" in result.stdout
    assert "decode: decoded anyway" in result.stdout  # the path decode takes (no colouriser in this test zoo)
    record = json.loads(run("info", source, "--json").stdout)["results"][0]
    assert record["model"] == TINY_NAME and record["code"] == {"confidence": 0.2, "asked": True}
    assert record["decode_path"] == "uncoded"
    photo(tmp_path / "p.png", 40, 48)
    assert run("encode", tmp_path / "p.png", "-o", tmp_path / "coded.png").exit_code == 0
    coded = run("info", tmp_path / "coded.png").stdout  # its chunk says invgray wrote it: the reading decides nothing
    assert "colour code: none that" in coded and "decode does not ask: the chunk says invgray wrote it" in coded
    monkeypatch.setattr(nets_module, "shipped_detector", lambda sha: FixedDetector(2, 0.9))
    assert f"colour code: {TINY_NAME}'s (confidence 0.90)" in run("info", source).stdout
    monkeypatch.setattr(nets_module, "shipped_detector", lambda sha: None)  # a model without a detector
    record = json.loads(run("info", source, "--json").stdout)["results"][0]
    assert record["code"] is None and record["decode_path"] == "as_it_comes"
