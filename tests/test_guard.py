"""The encode-time gray guard: its closed-form structure is the measured one, and it holds the floor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from invgray_cli import colour, metrics

from invgray_cli.codec import guard
from invgray_cli.codec.nets import Codec
from invgray_cli.models.zoo import ModelInfo
from invgray_cli.codec.encode import encode_array


def _scene(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A colour photo with weak texture, where a pattern shows, and the encoder's float gray for
    it: its luma plus a checkerboard residual. Returns (rgb, gray, luma)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 40 * np.sin(x / 17.0) * np.cos(y / 23.0)
    rgb = np.stack([base + 20, base - 10, base + 5], axis=-1) + rng.normal(0, 2.0, (height, width, 3))
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    luma = colour.luma_bt601(rgb)
    residual = 3.0 * (-1.0) ** (x + y) * (1 + 0.5 * np.sin(y / 9.0))
    gray = torch.from_numpy(((luma + residual) / 255.0).astype(np.float32))
    return torch.from_numpy(rgb), gray, luma


@pytest.mark.parametrize("strength", [1.0, 0.6, 0.25])
def test_closed_form_structure_is_the_measured_one(strength):
    rgb, gray, luma = _scene(70, 90)
    assert len(guard._bands(70, 90, band_pixels=16 * 90)) > 2  # several bands, their seams included
    scaled = np.clip(np.round(luma + strength * (gray.numpy().astype(np.float64) * 255 - luma)), 0, 255).astype(np.uint8)
    measured = metrics.gray_structure(scaled, luma)
    got = guard.structure_at(rgb, gray, [strength], band_pixels=16 * 90)[0]
    assert got == pytest.approx(measured, abs=5e-4)
    assert got == pytest.approx(guard.structure_at(rgb, gray, [strength])[0], abs=1e-6)  # bands change nothing


@pytest.mark.parametrize("height, width", [(5, 7), (11, 11), (600, 30), (1045, 3), (1500, 2000), (40, 7)])
def test_bands_cover_every_window_position_once(height, width):
    window = metrics._window_size(height, width)
    bands = guard._bands(height, width, band_pixels=64 * width)
    positions = sum(bottom - top - (window - 1) for top, bottom in bands)
    assert positions == height - (window - 1)
    assert bands[0][0] == 0 and bands[-1][1] == height


def test_pattern_strength_meets_the_floor_and_only_when_needed():
    rgb, gray, _ = _scene(64, 64)
    before = guard.structure_at(rgb, gray, [1.0])[0]
    assert before < 0.95  # the pattern shows
    assert guard.pattern_strength(rgb, gray, before - 0.01) == 1.0
    strength = guard.pattern_strength(rgb, gray, 0.97)
    assert 0.0 < strength < 1.0
    assert guard.structure_at(rgb, gray, [strength])[0] >= 0.97
    assert guard.structure_at(rgb, gray, [strength + 1 / 64])[0] < 0.97  # the largest such strength
    assert guard.pattern_strength(rgb, gray, 1.5) == 0.0  # out of reach: only the luma itself


def test_kept_luma_and_skipped_strengths_change_no_answer():
    rgb, gray, _ = _scene(64, 64)
    luma = guard.luma_windows(rgb)
    written = (gray * 255).round() / 255
    assert guard.structure_at(rgb, written, [1.0], luma=luma) == guard.structure_at(rgb, written, [1.0])
    moments = guard.kept_moments(rgb, gray, luma)
    assert moments[0][0].equal(guard.kept_moments(rgb, gray)[0][0])
    lower = guard.pattern_strength(rgb, gray, 0.96, moments)
    for floor in (0.965, 0.97, 0.98):  # a higher floor: the strengths above the lower floor's fail anyway
        assert guard.pattern_strength(rgb, gray, floor, moments, at_most=lower) == guard.pattern_strength(rgb, gray, floor)
    assert guard.luma_windows(torch.zeros(1, 5, 3, dtype=torch.uint8)) is None  # nothing to keep


def test_guarded_gray_scales_the_residual_in_place_of_the_network_gray():
    rgb, gray, luma = _scene(48, 40)
    strength = guard.pattern_strength(rgb, gray, 0.97)
    expected = np.clip(np.round(luma + strength * (gray.numpy().astype(np.float64) * 255 - luma)), 0, 255)
    got, applied = guard.guarded_gray(rgb.numpy(), gray.clone(), 0.97)
    assert applied == strength < 1.0
    got = got.numpy()
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - expected).max() <= 1
    untouched, applied = guard.guarded_gray(rgb.numpy(), gray.clone(), 0.0)
    assert applied == 1.0
    untouched = untouched.numpy()
    np.testing.assert_array_equal(untouched, torch.round(gray * 255).clamp(0, 255).to(torch.uint8).numpy())


def _codec(model, floor: float | None) -> Codec:
    info = ModelInfo("tiny.test", "0" * 64, model.divisibility, model.receptive_field, gray_floor=floor)
    return Codec.from_model(model, info, device="cpu")


def test_codec_holds_its_gray_floor(tiny_model):
    rgb = np.random.default_rng(1).integers(90, 170, (48, 40, 3), dtype=np.uint8)
    luma = colour.luma_bt601(rgb)
    free = encode_array(_codec(tiny_model, None), rgb)
    assert metrics.gray_structure(free, luma) < 0.9  # the random net's pattern shows
    held = encode_array(_codec(tiny_model, 0.95), rgb)
    assert held.dtype == np.uint8 and held.shape == free.shape
    assert metrics.gray_structure(held, luma) >= 0.95 - 2e-3
    lenient = encode_array(_codec(tiny_model, 0.0), rgb)  # a floor already met: the network's gray to the bit
    np.testing.assert_array_equal(lenient, free)


def test_gray_floor_option_on_encode_and_eval(tmp_path, weights):
    """--gray-floor reaches the codec from both commands, and eval reports the floor it ran with."""
    import json

    from PIL import Image

    from cli_helpers import run

    rgb = np.random.default_rng(1).integers(90, 170, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    luma = colour.luma_bt601(rgb)
    for floor, out in (("0", "free.png"), ("0.95", "held.png")):
        result = run("encode", tmp_path / "a.png", "-o", tmp_path / out, "--weights", weights, "--gray-floor", floor)
        assert result.exit_code == 0, result.stderr
    free = np.asarray(Image.open(tmp_path / "free.png"))
    held = np.asarray(Image.open(tmp_path / "held.png"))
    assert metrics.gray_structure(free, luma) < 0.9 <= 0.95 - 2e-3 <= metrics.gray_structure(held, luma)
    result = run("encode", tmp_path / "a.png", "-o", tmp_path / "again.png", "--weights", weights, "--gray-floor", "0.95")
    assert "hidden colour weakened to" in result.stderr and "gray floor 0.95" in result.stderr  # said, per file
    result = run("eval", tmp_path / "a.png", "--weights", weights, "--gray-floor", "0.95", "--json")
    report = json.loads(result.stdout)
    assert report["gray_floor"] == 0.95 and report["results"]["gray_structure_min"] >= 0.95 - 2e-3
    assert 0.0 < report["results"]["per_image"][0]["pattern_strength"] < 1.0
    assert run("encode", tmp_path / "a.png", "--gray-floor", "1.0").exit_code == 2  # unreachable: refused


def test_a_shipped_file_named_by_path_keeps_its_gray_floor(weights, monkeypatch):
    from cli_helpers import codec_entry, ship_only
    from invgray_cli.models.zoo import resolve_model

    ship_only(monkeypatch, None, codec_entry(weights, "tiny.floored", gray_floor=0.97))
    _, info = resolve_model(weights_path=weights)
    assert (info.name, info.gray_floor) == ("tiny.floored", 0.97)
    ship_only(monkeypatch, None)
    assert resolve_model(weights_path=weights)[1].gray_floor is None  # someone else's file: no floor


def test_the_floor_holds_for_the_gray_as_written_sync_pattern_included(tiny_model):
    """A scene of weak texture whose network gray just meets the floor, where the +-1 sync pattern
    takes 0.01 more: the gray as written is held, not only the network's."""
    from invgray_cli.codec.encode import finish_gray
    from invgray_cli.codec.sync_pattern import add_sync_pattern

    rgb, gray, luma = _scene(96, 96)
    gray = torch.from_numpy(((luma + 0.5 * (gray.numpy() * 255 - luma)) / 255.0).astype(np.float32))
    floor = guard.structure_at(rgb, gray, [1.0])[0] - 1e-3
    guarded, strength = guard.guarded_gray(rgb, gray.clone(), floor)
    assert strength == 1.0 and metrics.gray_structure(guarded.numpy(), luma) >= floor
    assert metrics.gray_structure(add_sync_pattern(guarded).numpy(), luma) < floor - 5e-3  # the old way
    codec = _codec(tiny_model, floor)
    assert codec.sync_pattern
    written = finish_gray(codec, rgb.numpy(), gray.clone(), block_code=False)
    assert metrics.gray_structure(written.gray, luma) >= floor
    assert 0.0 < written.strength < 1.0


def test_a_block_coded_gray_is_held_and_its_photo_colours_measured_once(tiny_model, monkeypatch):
    """With the block code the guard tries several aims; each try writes the same photo's code,
    so its colours are measured once, and the gray written is the last try's held gray with the
    sync pattern and a freshly measured block code."""
    from invgray_cli.codec import encode
    from invgray_cli.codec.block_code import embed_block_code
    from invgray_cli.codec.sync_pattern import add_sync_pattern

    rgb, gray, luma = _scene(96, 96)
    floor = guard.structure_at(rgb, gray, [1.0])[0] + 0.02
    measured, held = [], []
    original_bits, original_guard = encode.photo_code_bits, encode.guarded_gray
    monkeypatch.setattr(encode, "photo_code_bits", lambda *a: measured.append(1) or original_bits(*a))

    def recording_guard(*args, **kwargs):
        result = original_guard(*args, **kwargs)
        held.append(result[0].clone())
        return result

    monkeypatch.setattr(encode, "guarded_gray", recording_guard)
    written = encode.finish_gray(_codec(tiny_model, floor), rgb.numpy(), gray.clone(), block_code=True)
    assert len(held) >= 2 and measured == [1]
    assert metrics.gray_structure(written.gray, luma) >= floor
    assert np.array_equal(written.gray, embed_block_code(add_sync_pattern(held[-1]), rgb).numpy())
