"""The encode-time gray guard: its closed-form structure is the measured one, and it holds the floor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from invgray_cli import guard, metrics
from invgray_cli.codec import Codec
from invgray_cli.models.registry import ModelInfo


def _scene(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A weakly textured luma (where a pattern shows) and a checkerboard residual on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    luma = 120 + 40 * np.sin(x / 17.0) * np.cos(y / 23.0) + rng.normal(0, 2.0, (height, width))
    residual = 3.0 * (-1.0) ** (x + y) * (1 + 0.5 * np.sin(y / 9.0))
    return torch.from_numpy(luma.astype(np.float32)), torch.from_numpy(residual.astype(np.float32))


@pytest.mark.parametrize("strength", [1.0, 0.6, 0.25])
def test_closed_form_structure_is_the_measured_one(strength, monkeypatch):
    luma, residual = _scene(70, 90)
    monkeypatch.setattr(guard, "BAND_ROWS", 16)  # several bands, their seams included
    assert len(guard._bands(70)) > 2
    gray = np.clip(np.round((luma + strength * residual).numpy()), 0, 255).astype(np.uint8)
    measured = metrics.gray_structure(gray, luma.numpy().astype(np.float64))
    assert guard.structure_at(luma, residual, [strength])[0] == pytest.approx(measured, abs=2e-3)


def test_bands_cover_every_window_position_once():
    for height in (5, 11, 600, 1045, 1500):
        bands = guard._bands(height)
        positions = sum(bottom - top - (min(11, height) - 1) for top, bottom in bands)
        assert positions == height - (min(11, height) - 1)
        assert bands[0][0] == 0 and bands[-1][1] == height


def test_pattern_strength_meets_the_floor_and_only_when_needed():
    luma, residual = _scene(64, 64)
    before = guard.structure_at(luma, residual, [1.0])[0]
    assert before < 0.95  # the pattern shows
    assert guard.pattern_strength(luma, residual, before - 0.01) == 1.0
    strength = guard.pattern_strength(luma, residual, 0.97)
    assert 0.0 < strength < 1.0
    assert guard.structure_at(luma, residual, [strength])[0] >= 0.97
    assert guard.structure_at(luma, residual, [strength + 1 / 64])[0] < 0.97  # the largest such strength


def _codec(model, floor: float | None) -> Codec:
    info = ModelInfo("tiny.test", "0" * 64, model.divisibility, model.receptive_field, gray_floor=floor)
    return Codec.from_model(model, info, device="cpu")


def test_codec_holds_its_gray_floor(tiny_model):
    rgb = np.random.default_rng(1).integers(90, 170, (48, 40, 3), dtype=np.uint8)
    luma = metrics.luma_bt601(rgb)
    free = _codec(tiny_model, None).encode_array(rgb)
    assert metrics.gray_structure(free, luma) < 0.9  # the random net's pattern shows
    held = _codec(tiny_model, 0.95).encode_array(rgb)
    assert held.dtype == np.uint8 and held.shape == free.shape
    assert metrics.gray_structure(held, luma) >= 0.95 - 2e-3
    lenient = _codec(tiny_model, 0.0).encode_array(rgb)  # a floor already met: the network's gray to the bit
    np.testing.assert_array_equal(lenient, free)


def test_gray_floor_option_on_encode_and_eval(tmp_path):
    """--gray-floor reaches the codec from both commands, and eval reports the floor it ran with."""
    import json

    from PIL import Image

    from cli_helpers import run
    from invgray_cli.models.net import InvertibleGray, NetConfig
    from invgray_cli.models.registry import save_weights

    torch.manual_seed(0)
    model = InvertibleGray(NetConfig(scale=2, width=8, encoder_blocks=1, decoder_blocks=1))
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.1)
    weights = tmp_path / "tiny.safetensors"
    save_weights(model, weights)
    rgb = np.random.default_rng(1).integers(90, 170, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    luma = metrics.luma_bt601(rgb)
    for floor, out in (("0", "free.png"), ("0.95", "held.png")):
        result = run("encode", tmp_path / "a.png", "-o", tmp_path / out, "--weights", weights, "--gray-floor", floor)
        assert result.exit_code == 0, result.stderr
    free = np.asarray(Image.open(tmp_path / "free.png"))
    held = np.asarray(Image.open(tmp_path / "held.png"))
    assert metrics.gray_structure(free, luma) < 0.9 <= 0.95 - 2e-3 <= metrics.gray_structure(held, luma)
    result = run("eval", tmp_path / "a.png", "--weights", weights, "--gray-floor", "0.95", "--json")
    report = json.loads(result.stdout)
    assert report["gray_floor"] == 0.95 and report["results"]["gray_structure_min"] >= 0.95 - 2e-3
    assert run("encode", tmp_path / "a.png", "--gray-floor", "1.5").exit_code == 2
