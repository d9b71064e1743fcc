"""Palette hints (issue 25, item 3): dominant colours, the palette planes, the colouriser and the
commands that take a palette, and training a palette-aware net."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import assert_one_line_error, photo, run, run_json
from invgray_cli.colorize.dominant import dominant_colours, oklab_to_srgb, srgb_to_oklab
from invgray_cli.colorize.palette import MAX_PALETTE_COLOURS, hex_colour, parse_palette
from invgray_cli.colorize.session import ColorizerCodec, Hint, measured_guidance, palette_batch
from invgray_cli.colour import luma_bt601, rgb_to_chroma
from invgray_cli.errors import InvgrayError
from invgray_cli.models.colorizer import (GUIDE_CHANNELS, PALETTE_CHANNELS, Colorizer, ColorizerConfig, guide,
                                          palette_guess)
from invgray_cli.models.kinds import COLORIZER_NET
from invgray_cli.models.weights import load_weights, save_weights

TINY = ColorizerConfig(width=4, levels=2, bottom_blocks=1)
TINY_PALETTE = ColorizerConfig(width=4, levels=2, bottom_blocks=1, follow_edges=True, palette_planes=True)


def blocks_photo(shares: dict[tuple[int, int, int], int], width: int = 40) -> np.ndarray:
    """A photo of horizontal bands, each colour ``rows`` rows tall."""
    rows = [np.tile(np.array(colour, np.uint8), (count, width, 1)) for colour, count in shares.items()]
    return np.concatenate(rows, axis=0)


@pytest.fixture
def palette_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = Colorizer(TINY_PALETTE)
    path = tmp_path / "w" / "palette.safetensors"
    path.parent.mkdir()
    save_weights(model, path, name="tiny.palette")
    return path


def _gray_file(path: Path, width: int = 40, height: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.tile(np.linspace(20, 230, width, dtype=np.uint8), (height, 1)), "L").save(path)
    return path


# ---------------------------------------------------------------- the palette helper


def test_parse_palette():
    assert parse_palette("#3366cc,#D9B38C") == [(51, 102, 204), (217, 179, 140)]
    assert parse_palette(" 000000 , #ffffff ") == [(0, 0, 0), (255, 255, 255)]
    assert hex_colour((51, 102, 204)) == "#3366cc"
    for bad in ("#3366c", "#3366cc,,#ffffff", "red", ""):
        with pytest.raises(InvgrayError, match="#RRGGBB"):
            parse_palette(bad)
    with pytest.raises(InvgrayError, match=f"at most {MAX_PALETTE_COLOURS}"):
        parse_palette(",".join(["#102030"] * (MAX_PALETTE_COLOURS + 1)))


def test_oklab_round_trip():
    colours = np.random.default_rng(0).integers(0, 256, (200, 3)).astype(np.uint8)
    assert np.array_equal(oklab_to_srgb(srgb_to_oklab(colours)), colours)
    assert np.allclose(srgb_to_oklab(np.array([255, 255, 255])), (1.0, 0.0, 0.0), atol=1e-4)  # white: L = 1, no hue


def test_dominant_colours_finds_the_photo_s_colours_most_common_first_and_repeats():
    rgb = blocks_photo({(30, 90, 200): 12, (220, 180, 140): 30, (40, 140, 40): 6})
    rng = np.random.default_rng(0)
    noisy = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    found = dominant_colours(noisy, 3)
    assert len(found) == 3
    for got, want in zip(found, [(220, 180, 140), (30, 90, 200), (40, 140, 40)]):  # by share
        assert np.abs(np.array(got) - want).max() <= 2, (got, want)
    assert dominant_colours(noisy, 3) == found  # deterministic
    assert dominant_colours(noisy, 1)[0] != found[0]  # one colour is the mean of all, not the largest band
    assert dominant_colours(np.full((5, 5, 3), 7, np.uint8), 5) == [(7, 7, 7)]  # fewer when there are fewer
    assert dominant_colours(noisy, 0) == []
    with pytest.raises(ValueError, match="uint8"):
        dominant_colours(noisy.astype(np.float32), 3)


def test_palette_batch_pads_with_empty_slots():
    batch = palette_batch([[(255, 0, 0)], [], [(0, 0, 255), (0, 255, 0)]])
    assert batch.shape == (3, 2, 4)
    assert torch.equal(batch[0, 0], torch.tensor([1.0, 0.0, 0.0, 1.0])) and float(batch[0, 1].abs().sum()) == 0.0
    assert float(batch[1].abs().sum()) == 0.0 and torch.equal(batch[2, :, 3], torch.ones(2))


# ---------------------------------------------------------------- the planes


def test_palette_guess_reads_the_palette_by_luma(device):
    red, blue = (200, 30, 30), (120, 170, 240)  # luma 81 and 163
    luma_of = [float(luma_bt601(np.array([[c]], np.uint8))[0, 0]) / 255 for c in (red, blue)]
    luma = torch.tensor(luma_of + [0.5], device=device).view(1, 1, 1, 3)  # a red pixel, a blue one, a gray between
    palette = palette_batch([[red, blue]], device=torch.device(device))
    planes = palette_guess(luma, palette)
    assert planes.shape == (1, PALETTE_CHANNELS, 1, 3) and planes.device.type == device
    chroma = rgb_to_chroma(torch.tensor([red, blue], dtype=torch.float32).T[None, :, :, None] / 255)[0, :, :, 0]
    narrow = planes[0, :3, 0].cpu()  # Cb, Cr, confidence at the narrowest luma width
    assert torch.allclose(narrow[:2, 0], chroma[:, 0], atol=1e-3) and torch.allclose(narrow[:2, 1], chroma[:, 1], atol=1e-3)
    assert narrow[2, 0] == pytest.approx(1.0) and narrow[2, 2] < 0.5  # sure at a palette colour's luma, not between
    # empty slots and no palette count for nothing
    padded = torch.cat([palette, torch.zeros(1, 3, 4, device=device)], dim=1)
    assert torch.allclose(palette_guess(luma, padded), planes)
    assert float(palette_guess(luma, None).abs().max()) == 0.0
    assert float(palette_guess(luma, palette_batch([[]], device=torch.device(device))).abs().max()) == 0.0


def test_a_config_without_the_new_fields_keeps_its_planes():
    torch.manual_seed(0)
    luma, mask = torch.rand(1, 1, 24, 40), (torch.rand(1, 1, 24, 40) < 0.05).float()
    hints = torch.rand(1, 2, 24, 40) - 0.5
    old = guide(luma, hints, mask)
    assert old.shape[1] == GUIDE_CHANNELS == TINY.guide_channels
    assert torch.equal(guide(luma, hints, mask, palette_batch([[(255, 0, 0)]]), TINY), old)  # a palette changes nothing
    new = guide(luma, hints, mask, palette_batch([[(255, 0, 0)]]), TINY_PALETTE)
    assert new.shape[1] == TINY_PALETTE.guide_channels == GUIDE_CHANNELS + PALETTE_CHANNELS
    assert torch.equal(new[:, :4], old[:, :4])  # the gray and the hints themselves


def test_colorizer_files_keep_their_config_and_old_ones_load(palette_weights, tmp_path):
    loaded = load_weights(palette_weights, COLORIZER_NET)
    assert loaded.net.config == TINY_PALETTE and loaded.net.takes_palette
    with pytest.raises(InvgrayError, match="palette_planes"):
        COLORIZER_NET.config_from({"width": 4, "palette_planes": 1}, "x.safetensors")
    assert COLORIZER_NET.config_from({"width": 4, "levels": 2, "bottom_blocks": 1}, "old.safetensors") == TINY


def test_warm_start_from_a_net_without_palette_planes_behaves_like_it(tmp_path):
    from invgray_cli.train.fit import warm_start

    torch.manual_seed(0)
    old = Colorizer(TINY)
    save_weights(old, tmp_path / "old.safetensors")
    new = Colorizer(ColorizerConfig(width=4, levels=2, bottom_blocks=1, palette_planes=True))
    warm_start(new, tmp_path / "old.safetensors")
    assert float(new.stem[0].weight.detach()[:, GUIDE_CHANNELS:].abs().max()) == 0.0
    luma, mask = torch.rand(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    mask[0, 0, 3, 4] = 1.0
    hints = torch.rand(1, 2, 16, 16) - 0.5
    with torch.no_grad():
        assert torch.allclose(new(luma, hints, mask, palette_batch([[(200, 30, 30)]])), old(luma, hints, mask), atol=1e-6)


# ---------------------------------------------------------------- the colouriser and the commands


def test_colorize_array_takes_a_palette_only_where_the_net_has_planes(palette_weights):
    gray = np.tile(np.linspace(20, 230, 40, dtype=np.uint8), (30, 1))
    codec = ColorizerCodec.load(weights=palette_weights, device="cpu")
    plain = codec.colorize_array(gray)
    with_palette = codec.colorize_array(gray, [Hint(3, 3, (250, 0, 0))], [(200, 40, 40), (40, 60, 220)])
    assert np.abs(luma_bt601(with_palette) - gray).max() <= 1.0
    assert not np.array_equal(plain, with_palette)
    torch.manual_seed(0)
    without = ColorizerCodec.from_model(Colorizer(TINY), "tiny.plain", device="cpu")
    with pytest.raises(InvgrayError, match="takes no palette"):
        without.colorize_array(gray, [], [(200, 40, 40)])
    with pytest.raises(InvgrayError, match="at most"):
        codec.colorize_array(gray, [], [(1, 2, 3)] * (MAX_PALETTE_COLOURS + 1))


def test_colorize_command_with_a_palette_and_a_reference(palette_weights, tmp_path):
    source = _gray_file(tmp_path / "old.png")
    result, report = run_json("colorize", source, "-o", tmp_path / "a.png", "--colorizer-weights", palette_weights,
                              "--palette", "#3366cc,#d9b38c", "--hint", "3,3,#ff0000", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert report["model"]["name"] == "tiny.palette"
    reference = Image.fromarray(blocks_photo({(30, 90, 200): 10, (220, 180, 140): 20}))
    reference.save(tmp_path / "ref.png")
    result = run("colorize", source, "-o", tmp_path / "b.png", "--colorizer-weights", palette_weights,
                 "--reference", tmp_path / "ref.png", "--palette-size", "2", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert "the palette: #dcb48c, #1e5ac8" in result.stderr
    out = np.asarray(Image.open(tmp_path / "b.png"))
    assert np.abs(luma_bt601(out) - np.asarray(Image.open(source))).max() <= 1.0


def test_colorize_command_palette_errors(palette_weights, tmp_path):
    source = _gray_file(tmp_path / "old.png")
    assert_one_line_error(run("colorize", source, "--palette", "#12345", "--colorizer-weights", palette_weights),
                          2, "--palette", "#RRGGBB")
    assert_one_line_error(run("colorize", source, "--palette-size", "3", "--colorizer-weights", palette_weights),
                          2, "--reference")
    assert_one_line_error(run("colorize", source, "--reference", tmp_path / "missing.png", "--colorizer-weights",
                              palette_weights), 2, "--reference", "missing.png")
    _gray_file(tmp_path / "gray_ref.png")
    assert_one_line_error(run("colorize", source, "--reference", tmp_path / "gray_ref.png", "--colorizer-weights",
                              palette_weights), 2, "gives no colours")
    photo(tmp_path / "ref.png", 24, 18)
    assert_one_line_error(run("colorize", source, "--reference", tmp_path / "ref.png", "--palette-size", "8",
                              "--palette", "#000000", "--colorizer-weights", palette_weights), 2, "at most 8")
    torch.manual_seed(0)
    save_weights(Colorizer(TINY), tmp_path / "plain.safetensors", name="tiny.plain")
    assert_one_line_error(run("colorize", source, "-o", tmp_path / "x.png", "--palette", "#3366cc",
                              "--colorizer-weights", tmp_path / "plain.safetensors"), 2, "takes no palette")
    assert not (tmp_path / "x.png").exists()


def test_eval_colorize_measures_each_photo_s_own_palette(palette_weights, tmp_path):
    folder = tmp_path / "photos"
    for seed in range(3):
        photo(folder / f"{seed}.png", 24, 20, seed=seed)
    result, report = run_json("eval", folder, "--colorize", "--palette", "5", "--limit", "2",
                              "--colorizer-weights", palette_weights, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.stderr
    assert report["name"] == "invgray-eval-colorize" and report["hint_counts"] == [0] and report["palette_sizes"] == [5]
    assert report["results"]["count"] == 2
    assert {"psnr_0", "psnr_palette5", "ssim_palette5", "colourfulness_palette5", "gray_psnr"} <= set(report["results"]["mean"])
    assert "palette5" in report["description"] or "_paletteN" in report["description"]
    shown = run("eval", folder, "--colorize", "--palette", "3", "--limit", "1", "--colorizer-weights", palette_weights,
                "--device", "cpu")
    assert shown.exit_code == 0 and "palette of 3" in shown.stderr
    torch.manual_seed(0)
    save_weights(Colorizer(TINY), tmp_path / "plain.safetensors", name="tiny.plain")
    assert_one_line_error(run("eval", folder, "--colorize", "--palette", "5", "--colorizer-weights",
                              tmp_path / "plain.safetensors"), 2, "takes no palette")
    assert_one_line_error(run("eval", folder, "--palette", "5"), 2, "--colorize")


def test_measured_guidance_names_and_repeats():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    guidance = measured_guidance(rgb, 4, (0, 10), (5,))
    assert [g.key for g in guidance] == ["0", "10", "palette5"]
    assert len(guidance[1].hints) == 10 and not guidance[1].palette
    assert guidance[2].palette == dominant_colours(rgb, 5) and not guidance[2].hints
    assert measured_guidance(rgb, 4, (10,))[0] == guidance[1]


# ---------------------------------------------------------------- training


def test_sample_palettes_draws_the_crops_own_colours():
    from invgray_cli.train.colorizer import sample_palettes

    rgb = torch.from_numpy(blocks_photo({(30, 90, 200): 16, (220, 180, 140): 16}, width=32)).permute(2, 0, 1).float() / 255
    crops = rgb[None].repeat(6, 1, 1, 1)
    palettes = sample_palettes(crops, 1.0, np.random.default_rng(0))
    assert palettes.shape == (6, MAX_PALETTE_COLOURS, 4)
    counts = palettes[..., 3].sum(dim=1)
    assert counts.max() == 2 and set(counts.tolist()) <= {0.0, 1.0, 2.0}  # the crop has two colours
    two = palettes[counts == 2][0, :2, :3] * 255
    assert torch.allclose(two, torch.tensor([[30.0, 90.0, 200.0], [220.0, 180.0, 140.0]]), atol=1.0) or \
        torch.allclose(two, torch.tensor([[220.0, 180.0, 140.0], [30.0, 90.0, 200.0]]), atol=1.0)
    assert float(sample_palettes(crops, 0.0, np.random.default_rng(0)).abs().sum()) == 0.0


def test_a_palette_aware_net_trains_validates_and_resumes(tmp_path):
    from invgray_cli.train.colorizer import ColorizerTrainConfig, train_colorizer

    folder = tmp_path / "photos"
    for seed in range(3):
        photo(folder / f"{seed}.png", 40, 36, seed=seed)
    cfg = ColorizerTrainConfig(data=[str(folder)], val=[str(folder)], steps=3, batch=2, crop=32, val_every=3,
                               checkpoint_every=1, net=TINY_PALETTE.to_dict(), palette_share=1.0, device="cpu")
    torch.manual_seed(cfg.seed)  # as the run starts its net
    before = Colorizer(TINY_PALETTE).state_dict()
    trained = train_colorizer(cfg, tmp_path / "a.ckpt", log=lambda m: None)
    assert trained.takes_palette
    palette_inputs = trained.stem[0].weight.detach()[:, GUIDE_CHANNELS:]
    assert not torch.equal(palette_inputs, before["stem.0.weight"][:, GUIDE_CHANNELS:])  # the palette planes learn
    state = torch.load(tmp_path / "a.ckpt", weights_only=False)
    assert {"psnr_0", "psnr_palette5", "colourfulness_palette5", "score"} <= set(state["history"][-1])
    assert state["config"]["net"]["palette_planes"] is True
    again = train_colorizer(cfg, tmp_path / "a.ckpt", log=lambda m: None)  # resumes at its end: nothing more to do
    for key, value in trained.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_a_checkpoint_from_before_the_new_fields_still_resumes(tmp_path):
    from invgray_cli.train.colorizer import same_net

    old = {"width": 4, "levels": 2, "bottom_blocks": 1}
    assert same_net(old, TINY.to_dict()) and not same_net(old, TINY_PALETTE.to_dict()) and not same_net(None, TINY.to_dict())


def test_train_colorizer_command_makes_a_palette_aware_net(tmp_path):
    folder = tmp_path / "photos"
    for seed in range(2):
        photo(folder / f"{seed}.png", 40, 36, seed=seed)
    result = run("train-colorizer", folder, "--out", tmp_path / "c.ckpt", "--width", "4", "--steps", "1", "--batch", "2",
                 "--crop", "32", "--palette-share", "0.5", "--follow-edges", "--device", "cpu",
                 "--export", tmp_path / "c.safetensors")
    assert result.exit_code == 0, result.stderr
    net = load_weights(tmp_path / "c.safetensors", COLORIZER_NET).net
    assert net.config.palette_planes and net.config.follow_edges and net.config.width == 4


def test_a_palette_picks_the_first_shipped_colouriser_that_takes_one(monkeypatch):
    from dataclasses import replace

    from invgray_cli.colorize.session import find_colorizer
    from invgray_cli.models import zoo

    without_palette = [e for e in zoo.ZOO if not e.config.get("palette_planes", False)]
    plain = next(entry for entry in without_palette if entry.role == zoo.COLORIZER)
    takes = replace(plain, name="icolor_u24.palette_test", config={**plain.config, "palette_planes": True})
    monkeypatch.setattr(zoo, "ZOO", [*without_palette, takes])
    assert find_colorizer(None) == plain  # the default, without a palette
    assert find_colorizer(None, palette=True) == takes
    assert find_colorizer(plain.name, palette=True) == plain  # a colouriser named is the one used
    monkeypatch.setattr(zoo, "ZOO", [e for e in zoo.ZOO if e.name != takes.name])
    assert find_colorizer(None, palette=True) == plain  # none takes one: the default says so when asked
