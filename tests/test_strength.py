"""A gray the floor weakened: its strength travels in the chunk, and decode scales the pattern back."""
from __future__ import annotations

import json

import numpy as np
import pytest

from invgray_cli.codec.decode import strengthened
from invgray_cli.colour import luma_bt601
from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import CHUNK_KEY, make_chunk, parse_chunk


def test_the_chunk_carries_a_strength_only_when_the_pattern_was_weakened():
    for strength in (1.0, 0.0):
        assert "strength" not in json.loads(make_chunk("m.t", "ab" * 32, strength)[CHUNK_KEY])
        assert parse_chunk(make_chunk("m.t", "ab" * 32, strength)).strength == 1.0
    assert parse_chunk(make_chunk("m.t", "ab" * 32, 0.765625)).strength == 0.765625


@pytest.mark.parametrize("value", [True, "0.5", 0, 0.001, 1.5, -1, None, [0.5]])
def test_a_strength_that_is_no_strength_is_a_damaged_chunk(value):
    payload = {"format": 3, "model": "m.t", "sha256": "ab", "version": "0.7.0", "strength": value}
    with pytest.raises(InvgrayError, match="damaged .*pattern strength"):
        parse_chunk({CHUNK_KEY: json.dumps(payload)})


def test_strengthened_scales_the_pattern_back_around_the_decoded_luma():
    rng = np.random.default_rng(0)
    colour = rng.integers(60, 200, (24, 20, 3), dtype=np.uint8)
    luma = luma_bt601(colour)
    pattern = 8.0 * (-1.0) ** np.add.outer(np.arange(24), np.arange(20))
    weak = np.clip(np.round(luma + 0.5 * pattern), 0, 255).astype(np.uint8)
    full = strengthened(weak, colour, 0.5)
    assert full.dtype == np.uint8 and full.shape == weak.shape
    assert np.abs(full.astype(float) - (luma + pattern)).max() <= 1.5  # the rounding of weak, doubled
    np.testing.assert_array_equal(strengthened(weak, colour, 1.0), weak)


def test_every_decode_entry_scales_a_weakened_pattern_back(tiny_model):
    from invgray_cli.codec.decode import decode_grays, restore
    from invgray_cli.codec.encode import encode_array
    from invgray_cli.codec.nets import Codec
    from invgray_cli.io.images import GrayImage
    from invgray_cli.models.zoo import ModelInfo

    info = ModelInfo("tiny.test", "0" * 64, tiny_model.divisibility, tiny_model.receptive_field)
    codec = Codec.from_model(tiny_model, info, device="cpu")
    gray = encode_array(codec, np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    weak = GrayImage(gray, None, codec.chunk_text(0.5))
    plain = GrayImage(gray, None, codec.chunk_text())
    one, = decode_grays(codec, [weak])
    np.testing.assert_array_equal(one.rgb, restore(codec, weak).rgb)
    assert not np.array_equal(one.rgb, decode_grays(codec, [plain])[0].rgb)


def test_info_shows_the_strength_decode_acts_on(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from cli_helpers import run

    info = PngInfo()
    for key, value in make_chunk("m.t", "ab" * 32, 0.5).items():
        info.add_text(key, value)
    Image.new("L", (16, 16), 100).save(tmp_path / "g.png", pnginfo=info)
    result = run("info", tmp_path / "g.png")
    assert "pattern strength: 0.500 (weakened by the gray floor; decode scales it back)" in result.stdout
