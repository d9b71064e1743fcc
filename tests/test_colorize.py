"""Colourisation of plain grays: hints, luma preservation, the command, eval --colorize, training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import assert_one_line_error, photo, run, run_json
from invgray_cli.colorize.session import (
    ColorizerCodec,
    Hint,
    colourfulness,
    hint_planes,
    parse_hint,
    random_hints,
    read_hints_file,
)
from invgray_cli.errors import InvgrayError
from invgray_cli.colour import chroma_to_rgb, luma_bt601, rgb_to_chroma
from invgray_cli.models.colorizer import Colorizer, ColorizerConfig, bilateral_spread, guide, spread_hints
from invgray_cli.models.kinds import COLORIZER_NET
from invgray_cli.models.weights import load_weights, save_weights

TINY = ColorizerConfig(width=4, levels=2, bottom_blocks=1)


@pytest.fixture
def colorizer_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = Colorizer(TINY)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.2, -0.15]))  # a clearly coloured output
    path = tmp_path / "w" / "col.safetensors"
    path.parent.mkdir()
    save_weights(model, path, name="tiny.colorizer")
    return path


def _gray_photo(path: Path, width: int = 40, height: int = 30) -> Path:
    ramp = np.tile(np.linspace(20, 230, width, dtype=np.uint8), (height, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ramp, "L").save(path)
    return path


def test_hint_parsing():
    assert parse_hint("12,3,#FF8000") == Hint(12, 3, (255, 128, 0))
    assert parse_hint(" 0 , 7 , 00ff00 ") == Hint(0, 7, (0, 255, 0))
    for bad in ("12,3", "a,b,#ffffff", "1,2,#fff", "1,2,#gggggg", "1,2,3,#ffffff"):
        with pytest.raises(InvgrayError, match="X,Y,#RRGGBB"):
            parse_hint(bad)


def test_hints_file(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps([{"x": 1, "y": 2, "color": "#102030"}]))
    assert read_hints_file(path) == [Hint(1, 2, (16, 32, 48))]
    for content, needle in (("{", "not valid JSON"), ('{"x": 1}', "JSON list"), ('[{"x": 1, "y": "2", "color": "#000000"}]', "hint 0"),
                            ('[{"x": 1, "y": 2, "color": "blue"}]', '"blue"')):
        path.write_text(content)
        with pytest.raises(InvgrayError, match=needle):
            read_hints_file(path)
    with pytest.raises(InvgrayError, match="cannot read"):
        read_hints_file(tmp_path / "missing.json")


def test_chroma_to_rgb_keeps_the_luma_even_out_of_gamut():
    torch.manual_seed(0)
    luma = torch.rand(1, 1, 32, 32)
    chroma = torch.randn(1, 2, 32, 32)  # mostly far outside the RGB cube
    rgb = chroma_to_rgb(luma, chroma)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert torch.allclose(0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2], luma[:, 0], atol=1e-5)
    inside = torch.rand(1, 3, 8, 8)  # an in-gamut colour comes back as itself
    back = chroma_to_rgb(0.299 * inside[:, :1] + 0.587 * inside[:, 1:2] + 0.114 * inside[:, 2:], rgb_to_chroma(inside))
    assert torch.allclose(back, inside, atol=1e-5)


def test_colorize_keeps_the_gray_as_luma_and_honours_hints(colorizer_weights):
    codec = ColorizerCodec.load(weights=colorizer_weights, device="cpu")
    gray = np.asarray(_ramp_image())
    hints = [Hint(5, 5, (200, 40, 40)), Hint(30, 20, (40, 40, 200))]
    out = codec.colorize_array(gray, hints)
    assert out.shape == (*gray.shape, 3) and out.dtype == np.uint8
    assert np.abs(luma_bt601(out) - gray).max() <= 1.0  # tones unchanged up to rounding
    assert colourfulness(out) > 5  # not the gray itself
    # at a hint the chroma is the hint's (its luma is the gray's)
    hint_chroma = rgb_to_chroma(torch.tensor([200, 40, 40], dtype=torch.float32).view(1, 3, 1, 1) / 255)
    got = rgb_to_chroma(torch.from_numpy(out[5:6, 5:6].astype(np.float32) / 255).permute(2, 0, 1)[None])
    assert torch.allclose(got, hint_chroma, atol=0.02)
    with pytest.raises(InvgrayError, match="outside"):
        codec.colorize_array(gray, [Hint(gray.shape[1], 0, (0, 0, 0))])


def _ramp_image() -> Image.Image:
    return Image.fromarray(np.tile(np.linspace(20, 230, 40, dtype=np.uint8), (30, 1)), "L")


def test_tiles_with_their_margin_match_the_whole_image(colorizer_weights, monkeypatch):
    codec = ColorizerCodec.load(weights=colorizer_weights, device="cpu")
    rng = np.random.default_rng(0)
    gray = np.asarray(_ramp_image().resize((320, 288))).copy()
    gray[::7] = 40  # some structure for the net to follow
    luma = torch.from_numpy(gray.astype(np.float32) / 255)[None, None]
    hints = [Hint(int(x), int(y), (200, 60, 30)) for x, y in zip(rng.integers(0, 320, 20), rng.integers(0, 288, 20))]
    planes = guide(luma, *hint_planes(hints, 288, 320))
    whole = codec._whole(planes)
    tiled = codec._tiled(planes, tile=64)  # 20 tiles, each seeing TILE_MARGIN around it
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < 1e-4
    from invgray_cli.colorize import session as colorize

    monkeypatch.setattr(colorize, "TILE_MARGIN", 0)  # the margin is what makes it work: without it, seams
    seamed = codec._tiled(planes, tile=64)
    assert float((seamed - whole).abs().max()) > 1e-3


def test_random_hints_are_the_photos_own_pixels_and_repeat():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    hints = random_hints(rgb, 12, np.random.default_rng(5))
    assert len({(h.x, h.y) for h in hints}) == 12
    assert all(h.rgb == tuple(rgb[h.y, h.x]) for h in hints)
    assert hints == random_hints(rgb, 12, np.random.default_rng(5))
    chroma, mask = hint_planes(hints, 20, 30)
    assert int(mask.sum()) == 12 and chroma.shape == (1, 2, 20, 30)


def test_colorizer_file_round_trip_and_checks(colorizer_weights, tmp_path):
    loaded = load_weights(colorizer_weights, COLORIZER_NET)
    assert loaded.name == "tiny.colorizer" and loaded.net.config == TINY and len(loaded.sha256) == 64
    with pytest.raises(InvgrayError, match="sha256"):
        load_weights(colorizer_weights, COLORIZER_NET, "0" * 64)
    from invgray_cli.models import InvertibleGray, NetConfig

    save_weights(InvertibleGray(NetConfig(scale=2, width=4, encoder_blocks=1, decoder_blocks=1)), tmp_path / "codec.safetensors")
    with pytest.raises(InvgrayError, match="not an invgray colouriser"):
        load_weights(tmp_path / "codec.safetensors", COLORIZER_NET)


def test_colorize_command(colorizer_weights, tmp_path):
    source = _gray_photo(tmp_path / "old.png")
    result, report = run_json("colorize", source, "-o", tmp_path / "c.png", "--colorizer-weights", colorizer_weights,
                              "--hint", "3,3,#ff0000", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert report["model"]["name"] == "tiny.colorizer" and report["device"] == "cpu"
    out = np.asarray(Image.open(tmp_path / "c.png"))
    assert np.abs(luma_bt601(out) - np.asarray(Image.open(source))).max() <= 1.0
    # default name beside the input; a colour photo is taken as its luma
    colour = photo(tmp_path / "p.png", 24, 18)
    assert run("colorize", colour, "--colorizer-weights", colorizer_weights).exit_code == 0
    assert (tmp_path / "p.colorized.png").exists()


def test_colorize_command_errors(colorizer_weights, tmp_path):
    source = _gray_photo(tmp_path / "old.png")
    assert_one_line_error(run("colorize", source, "--hint", "1,1,red", "--colorizer-weights", colorizer_weights),
                          2, "X,Y,#RRGGBB")
    assert_one_line_error(run("colorize", source, "--hint", "400,1,#ffffff", "-o", tmp_path / "x.png",
                              "--colorizer-weights", colorizer_weights), 1, "outside the 40x30 image")
    (tmp_path / "h.json").write_text("[1]")
    assert_one_line_error(run("colorize", source, "--hints", tmp_path / "h.json", "--colorizer-weights",
                              colorizer_weights), 2, "hint 0")
    assert not (tmp_path / "x.png").exists()


def test_colorize_without_a_shipped_colorizer_says_so(tmp_path, monkeypatch):
    from invgray_cli.models import zoo

    monkeypatch.setattr(zoo, "ZOO", [entry for entry in zoo.ZOO if entry.role != zoo.COLORIZER])
    result = run("colorize", _gray_photo(tmp_path / "g.png"), "-o", tmp_path / "c.png")
    assert_one_line_error(result, 1, "--colorizer-weights")


def test_eval_colorize_reports_each_hint_count(colorizer_weights, tmp_path):
    folder = tmp_path / "photos"
    for seed in range(2):
        photo(folder / f"{seed}.png", 24, 20, seed=seed)
    result, report = run_json("eval", folder, "--colorize", "--hints", "0", "--hints", "5",
                              "--colorizer-weights", colorizer_weights, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.stderr
    assert report["name"] == "invgray-eval-colorize" and report["hint_counts"] == [0, 5]
    mean = report["results"]["mean"]
    assert {"psnr_0", "psnr_5", "ssim_0", "colourfulness_5", "gray_psnr"} <= set(mean)
    again = run_json("eval", folder, "--colorize", "--hints", "5", "--colorizer-weights", colorizer_weights,
                     "--device", "cpu", "-q")[1]
    assert again["results"]["mean"]["psnr_5"] == pytest.approx(mean["psnr_5"])  # seeded hints repeat


def test_training_the_colorizer_resumes_and_validates(tmp_path):
    from invgray_cli.train.colorizer import ColorizerTrainConfig, sample_hints, train_colorizer

    folder = tmp_path / "photos"
    for seed in range(3):
        photo(folder / f"{seed}.png", 40, 36, seed=seed)
    cfg = ColorizerTrainConfig(data=[str(folder)], val=[str(folder)], steps=3, batch=2, crop=32, val_every=3,
                               checkpoint_every=1, net=TINY.to_dict(), device="cpu")
    straight = train_colorizer(cfg, tmp_path / "a.ckpt", log=lambda m: None)

    def stop_at_step_2(message: str) -> None:
        if message.startswith("step 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # stopped before step 2's checkpoint: resumes from step 1
        train_colorizer(cfg, tmp_path / "b.ckpt", log=stop_at_step_2, log_every=1)
    assert torch.load(tmp_path / "b.ckpt", weights_only=False)["step"] == 1
    resumed = train_colorizer(cfg, tmp_path / "b.ckpt", log=lambda m: None)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    state = torch.load(tmp_path / "a.ckpt", weights_only=False)
    assert {"psnr_0", "psnr_10", "psnr_100", "score"} <= set(state["history"][-1])
    assert (tmp_path / "a.best.ckpt").exists()
    chroma = torch.rand(4, 2, 16, 16)
    hints, mask = sample_hints(chroma, cfg, np.random.default_rng(0))
    assert torch.equal(hints, chroma * mask) and set(mask.unique().tolist()) <= {0.0, 1.0}


def test_eval_colorize_options_are_checked(colorizer_weights, tmp_path):
    source = photo(tmp_path / "p.png")
    assert_one_line_error(run("eval", source, "--hints", "10"), 2, "--colorize")
    assert_one_line_error(run("eval", source, "--colorize", "--jpeg", "90", "--colorizer-weights", colorizer_weights),
                          2, "--colorize")


@pytest.mark.slow
def test_colorizer_chooses_a_shipped_colouriser_by_name(tmp_path):
    from invgray_cli.models import zoo

    shipped = [entry for entry in zoo.ZOO if entry.role == zoo.COLORIZER]
    if not shipped:
        pytest.skip("this invgray ships no colouriser")
    last = shipped[-1]
    source = _gray_photo(tmp_path / "old.png")
    result, report = run_json("colorize", source, "-o", tmp_path / "c.png", "--colorizer", last.name.split(".")[-1],
                              "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert report["model"]["name"] == last.name
    assert_one_line_error(run("colorize", source, "--colorizer", "no_such_tag"), 2, "unknown colouriser")
    assert not (tmp_path / "old.colorized.png").exists()


def test_colorizer_options_are_checked(colorizer_weights, tmp_path):
    source = photo(tmp_path / "p.png")
    assert_one_line_error(run("colorize", source, "--colorizer", "x", "--colorizer-weights", colorizer_weights),
                          2, "give one")
    assert_one_line_error(run("eval", source, "--colorizer", "x"), 2, "--colorize")
    assert_one_line_error(run("eval", source, "--colorize", "--colorizer", "no_such_tag"), 2, "unknown colouriser")


def test_bilateral_spread_keeps_a_hint_on_its_side_of_an_edge():
    luma = torch.full((1, 1, 64, 96), 0.2)
    luma[..., 48:] = 0.8  # a strong vertical edge at x = 48
    hints, mask = hint_planes([Hint(40, 30, (220, 40, 40))], 64, 96)
    spread = bilateral_spread(luma, hints, mask, cell=16, bins=8, passes=3)
    near_same_side, near_other_side = spread[0, :, 30, 30], spread[0, :, 30, 56]
    assert torch.allclose(near_same_side[:2], hints[0, :, 30, 40], atol=1e-5)  # the hint's own chroma
    assert near_same_side[2] > 0.5 and near_other_side[2] < 0.05  # and no colour across the edge
    box_spread = spread_hints(hints, mask)[0, 5, 30, 56]  # the plain 32-px box does cross it
    assert box_spread > 0.2
    nothing = bilateral_spread(luma, hints, torch.zeros_like(mask), cell=16, bins=8, passes=3)
    assert float(nothing.abs().max()) == 0.0


def test_warm_start_from_a_net_with_fewer_input_planes_behaves_like_it(tmp_path):
    from invgray_cli.train.fit import warm_start

    torch.manual_seed(0)
    model = Colorizer(TINY)
    narrow = {k: (v[:, :10] if k == "stem.0.weight" else v) for k, v in model.state_dict().items()}
    torch.save({"model": narrow}, tmp_path / "narrow.ckpt")  # as a net before the bilateral planes
    started = Colorizer(TINY)
    warm_start(started, tmp_path / "narrow.ckpt")
    assert float(started.stem[0].weight.detach()[:, 10:].abs().max()) == 0.0
    hints, mask = hint_planes([Hint(3, 4, (200, 30, 30)), Hint(12, 9, (30, 30, 200))], 16, 16)
    planes = guide(torch.rand(1, 1, 16, 16), hints, mask)
    assert float(planes[:, 10:].abs().max()) > 0.1
    truncated = planes.clone()
    truncated[:, 10:] = 0.0
    assert torch.allclose(started.body(planes), model.body(truncated), atol=1e-6)
    with pytest.raises(InvgrayError, match="does not fit"):
        warm_start(Colorizer(ColorizerConfig(width=TINY.width * 2, levels=TINY.levels)), tmp_path / "narrow.ckpt")


def test_colorizer_losses_regress_and_punish_dull_colour_only():
    from invgray_cli.train.colorizer import colorizer_loss

    target = torch.rand(2, 2, 8, 8) - 0.5
    exact, terms = colorizer_loss(target, target, 1.0, "mse")
    assert float(exact) == 0.0 and terms["dull"] == 0.0
    off = target + 0.1
    mse, _ = colorizer_loss(off, target, 0.0, "mse")
    assert torch.isclose(mse, torch.tensor(0.01))
    smooth_l1, _ = colorizer_loss(off, target, 0.0, "smooth-l1")
    assert torch.isclose(smooth_l1, torch.tensor(0.1 - 0.01))  # linear beyond beta = 0.02
    _, terms = colorizer_loss(target * 2, target, 1.0, "mse")
    _, dull_terms = colorizer_loss(target * 0.5, target, 1.0, "mse")
    assert terms["dull"] == 0.0 and dull_terms["dull"] > 0.0  # only falling short of the photo's colour costs
    with pytest.raises(InvgrayError, match="unknown regression loss"):
        colorizer_loss(target, target, 0.0, "l2")
