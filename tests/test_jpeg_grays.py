"""JPEG grays: `encode -o x.jpg` writes a JPEG with the model in its comment, decode picks the
model from it (the JPEG-trained one when the comment is gone), `eval --jpeg Q` measures re-saves."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import TINY_NAME, assert_one_line_error, photo, run, run_json
from invgray_cli.codec import codec as codec_module
from invgray_cli.io.images import jpeg_comment_text, jpeg_round_trip, read_gray, write_gray_jpeg
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.models import zoo as registry
from invgray_cli.models.zoo import WeightsEntry, save_weights

JPEG_NAME = "tiny.jpeg"


@pytest.fixture
def with_jpeg_model(registered: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny default model plus a second tiny model registered as the one for JPEG grays."""
    torch.manual_seed(1)
    other = InvertibleGray(NetConfig(scale=2, width=8, encoder_blocks=1, decoder_blocks=1)).eval()
    path = registered.parent / "tiny_jpeg.safetensors"
    save_weights(other, path, name=JPEG_NAME)
    entry = WeightsEntry(JPEG_NAME, path.name, registry.file_sha256(path), other.config.to_dict(), other.divisibility,
                         other.receptive_field, "tiny JPEG test model", "MIT", jpeg_quality=80)
    monkeypatch.setattr(registry, "REGISTRY", [*registry.REGISTRY, entry])
    return path


def _chunk_model(path: Path) -> str:
    return json.loads(read_gray(path).text["invgray"])["model"]


def test_jpeg_comment_round_trip(tmp_path):
    gray = np.tile(np.arange(40, dtype=np.uint8), (30, 1))
    write_gray_jpeg(gray, {"invgray": '{"model":"m"}'}, tmp_path / "g.jpg", 90)
    image = read_gray(tmp_path / "g.jpg")
    assert image.lossy and image.text == {"invgray": '{"model":"m"}'}
    assert np.abs(image.gray.astype(int) - gray).max() <= 3
    assert not read_gray(_png_bytes(gray)).lossy


def _png_bytes(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "PNG")
    return buffer.getvalue()


def test_other_tools_comments_are_not_ours(tmp_path):
    for comment in (b"made with GIMP", b"[1, 2]", b"\xff\xfe"):
        Image.new("L", (8, 8)).save(tmp_path / "c.jpg", comment=comment)
        assert jpeg_comment_text(Image.open(tmp_path / "c.jpg")) == {}


def test_encode_to_jpg_uses_the_jpeg_model_and_its_quality(with_jpeg_model, tmp_path):
    source = photo(tmp_path / "p.png", 32, 24)
    result = run("encode", source, "-o", tmp_path / "g.jpg")
    assert result.exit_code == 0, result.stderr
    image = Image.open(tmp_path / "g.jpg")
    assert image.format == "JPEG" and image.mode == "L"
    assert _chunk_model(tmp_path / "g.jpg") == JPEG_NAME
    # the model's quality 80 by default, --quality otherwise: compare with re-encodes of the same gray
    sizes = {}
    for quality in (80, 40):
        run("encode", source, "-o", tmp_path / f"q{quality}.jpg", "--quality", quality)
        sizes[quality] = (tmp_path / f"q{quality}.jpg").stat().st_size
    assert (tmp_path / "g.jpg").read_bytes() == (tmp_path / "q80.jpg").read_bytes()
    assert sizes[40] < sizes[80]
    # a PNG output keeps the default model
    run("encode", source, "-o", tmp_path / "g.png")
    assert _chunk_model(tmp_path / "g.png") == TINY_NAME


def test_encode_to_jpg_with_model_named_keeps_it(with_jpeg_model, tmp_path):
    source = photo(tmp_path / "p.png", 32, 24)
    assert run("encode", source, "-o", tmp_path / "g.jpg", "--model", TINY_NAME).exit_code == 0
    assert _chunk_model(tmp_path / "g.jpg") == TINY_NAME


def test_decode_of_a_jpeg_gray_picks_its_model_or_the_jpeg_model(with_jpeg_model, tmp_path):
    source = photo(tmp_path / "p.png", 32, 24)
    run("encode", source, "-o", tmp_path / "g.jpg", "--model", TINY_NAME)
    result, report = run_json("decode", tmp_path / "g.jpg", "-o", tmp_path / "c.png")
    assert result.exit_code == 0 and report["results"]["files"][0]["model"] == TINY_NAME
    # the comment stripped (re-saved by another tool): the JPEG model, with the warning
    Image.fromarray(np.asarray(Image.open(tmp_path / "g.jpg"))).save(tmp_path / "bare.jpg", quality=95)
    result, report = run_json("decode", tmp_path / "bare.jpg", "-o", tmp_path / "c2.png")
    assert result.exit_code == 0 and report["results"]["files"][0]["model"] == JPEG_NAME
    assert "no invgray chunk" in result.stderr


def test_choose_model_for_lossy_grays_without_a_jpeg_model(registered):
    spec, warning = codec_module.choose_model({}, jpeg=True)
    assert spec.name == TINY_NAME and warning  # no JPEG model shipped: the default


def test_encode_refuses_other_lossy_gray_formats(registered, tmp_path):
    source = photo(tmp_path / "p.png")
    assert_one_line_error(run("encode", source, "-o", tmp_path / "g.webp"), 2, ".png", ".jpg")


def test_encode_to_jpg_says_the_alpha_is_dropped(registered, tmp_path):
    source = photo(tmp_path / "p.png", mode="RGBA")
    result = run("encode", source, "-o", tmp_path / "g.jpg")
    assert result.exit_code == 0 and "alpha is dropped" in result.stderr


def test_info_shows_the_jpeg_grays_model(registered, tmp_path):
    run("encode", photo(tmp_path / "p.png"), "-o", tmp_path / "g.jpg")
    result = run("info", tmp_path / "g.jpg")
    assert result.exit_code == 0 and TINY_NAME in result.stdout


def test_eval_reports_each_jpeg_quality(registered, tmp_path):
    folder = tmp_path / "photos"
    for seed in range(2):
        photo(folder / f"{seed}.png", 24, 20, seed=seed)
    result, report = run_json("eval", folder, "--jpeg", "90", "--jpeg", "50", "-q")
    assert result.exit_code == 0, result.stderr
    results = report["results"]
    assert report["jpeg_qualities"] == [90, 50]
    record = results["per_image"][0]
    assert {"psnr_jpeg90", "psnr_jpeg50"} <= set(record) and set(results["mean"]) >= {"psnr_jpeg90", "psnr_jpeg50"}
    means = [r["psnr_jpeg50"] for r in results["per_image"]]
    assert results["mean"]["psnr_jpeg50"] == pytest.approx(sum(means) / len(means))


def test_eval_jpeg_psnr_is_the_decode_of_the_resaved_gray(registered, tmp_path):
    from invgray_cli import metrics
    from invgray_cli.codec.codec import Codec
    from invgray_cli.eval.evaluate import evaluate_folder

    image = photo(tmp_path / "p.png", 24, 20)
    codec = Codec.load(device="cpu", tile=0)
    report = evaluate_folder([image], codec, jpeg_qualities=[60])
    rgb = np.asarray(Image.open(image).convert("RGB"))
    expected = metrics.psnr(codec.decode_array(jpeg_round_trip(codec.encode_array(rgb), 60)), rgb)
    assert report["results"]["per_image"][0]["psnr_jpeg60"] == pytest.approx(expected)


def test_registry_jpeg_model_name(with_jpeg_model):
    assert registry.jpeg_model_name() == JPEG_NAME
    assert codec_module.model_for_jpeg() == JPEG_NAME
    info = codec_module.Codec.load(JPEG_NAME, device="cpu").info
    assert info.jpeg_quality == 80


def test_encode_to_jpg_warns_when_no_jpeg_model_ships(registered, tmp_path):
    result = run("encode", photo(tmp_path / "p.png"), "-o", tmp_path / "g.jpg")
    assert result.exit_code == 0 and "no model trained for JPEG grays" in result.stderr
    assert "no model trained" not in run("encode", photo(tmp_path / "p.png"), "-o", tmp_path / "g.png").stderr


def test_api_decode_of_a_pil_jpeg_reads_its_comment(with_jpeg_model, tmp_path):
    import warnings

    from invgray_cli.codec import codec as api

    run("encode", photo(tmp_path / "p.png", 32, 24), "-o", tmp_path / "g.jpg", "--model", TINY_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the comment names the model: no "no chunk" warning
        out = api.decode(Image.open(tmp_path / "g.jpg"), device="cpu")
    assert out.size == (32, 24)
    bare = Image.open(io.BytesIO(_jpeg_without_comment(tmp_path / "g.jpg")))
    with pytest.warns(UserWarning, match=JPEG_NAME):  # no comment: the JPEG model, said so
        api.decode(bare, device="cpu")


def _jpeg_without_comment(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(Image.open(path))).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_quality_needs_a_jpeg_output(registered, tmp_path):
    assert_one_line_error(run("encode", photo(tmp_path / "p.png"), "-o", tmp_path / "g.png", "--quality", "80"),
                          2, "--quality")
