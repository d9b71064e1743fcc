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
from invgray_cli.io.images import jpeg_comment_text, read_gray
from invgray_cli.io.jpeg import jpeg_round_trip
from invgray_cli.io.writing import write_gray_jpeg
from invgray_cli.models import InvertibleGray, NetConfig, zoo as registry
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array

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


def test_encode_to_jpg_writes_the_models_gray_at_quality_90(registered, tmp_path):
    source = photo(tmp_path / "p.png", 80, 64)
    result = run("encode", source, "-o", tmp_path / "g.jpg")
    assert result.exit_code == 0, result.stderr
    assert "no model trained" not in result.stderr  # a JPEG gray is the model's own, decoded through its block code
    image = Image.open(tmp_path / "g.jpg")
    assert image.format == "JPEG" and image.mode == "L"
    assert _chunk_model(tmp_path / "g.jpg") == TINY_NAME
    sizes = {}
    for quality in (90, 40):
        run("encode", source, "-o", tmp_path / f"q{quality}.jpg", "--quality", quality)
        sizes[quality] = (tmp_path / f"q{quality}.jpg").stat().st_size
    assert (tmp_path / "g.jpg").read_bytes() == (tmp_path / "q90.jpg").read_bytes()
    assert sizes[40] < sizes[90]


def test_decode_of_a_jpeg_gray_picks_its_model_and_says_the_path(registered, tmp_path):
    source = photo(tmp_path / "p.png", 80, 64)
    run("encode", source, "-o", tmp_path / "g.jpg")
    result, report = run_json("decode", tmp_path / "g.jpg", "-o", tmp_path / "c.png")
    record = report["results"]["files"][0]
    assert result.exit_code == 0 and record["model"] == TINY_NAME and record["decode_path"] == "block_code"
    # the comment stripped (re-saved by another tool): the default model, with the warning
    Image.fromarray(np.asarray(Image.open(tmp_path / "g.jpg"))).save(tmp_path / "bare.jpg", quality=95)
    result, report = run_json("decode", tmp_path / "bare.jpg", "-o", tmp_path / "c2.png")
    assert result.exit_code == 0 and report["results"]["files"][0]["model"] == TINY_NAME
    assert "no invgray chunk" in result.stderr


def test_a_jpeg_gray_without_a_readable_block_code_is_decoded_only_if_its_code_is_read(registered, tmp_path,
                                                                                        monkeypatch):
    """A JPEG gray too small (or too coarse) for its block code: the detector decides whether its
    fine code survived. Read: decoded as it comes; not read: its colour is lost, said so, and it
    is colourised (here no colouriser ships: decoded with that warning) or refused."""
    from test_detector import FixedDetector

    from invgray_cli.codec import nets

    run("encode", photo(tmp_path / "p.png", 48, 40), "-o", tmp_path / "g.jpg")
    monkeypatch.setattr(nets, "shipped_detector", lambda sha: FixedDetector(2, 0.9))
    result, report = run_json("decode", tmp_path / "g.jpg", "-o", tmp_path / "c.png")
    assert result.exit_code == 0 and report["results"]["files"][0]["decode_path"] in ("as_it_comes", "sync_pattern")
    monkeypatch.setattr(nets, "shipped_detector", lambda sha: FixedDetector(2, 0.05))
    result, report = run_json("decode", tmp_path / "g.jpg", "-o", tmp_path / "c2.png")
    assert result.exit_code == 0 and report["results"]["files"][0]["decode_path"] == "uncoded"
    assert "hidden colour is lost" in result.stderr and "confidence 0.05" in result.stderr
    result = run("decode", tmp_path / "g.jpg", "-o", tmp_path / "c3.png", "--no-fallback")
    assert_one_line_error(result, 1, "hidden colour is lost", "--no-fallback")


def test_encode_refuses_other_lossy_gray_formats(registered, tmp_path):
    source = photo(tmp_path / "p.png")
    assert_one_line_error(run("encode", source, "-o", tmp_path / "g.jp2"), 2, ".png", ".jpg")  # a WebP gray is lossless


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
    from invgray_cli.codec.nets import Codec
    from invgray_cli.eval.evaluate import evaluate_folder

    image = photo(tmp_path / "p.png", 24, 20)
    codec = Codec.load(device="cpu", tile=0)
    report = evaluate_folder([image], codec, jpeg_qualities=[60])
    rgb = np.asarray(Image.open(image).convert("RGB"))
    from invgray_cli.api import decode

    buffer = io.BytesIO()  # the gray re-saved by another tool, decoded as `invgray decode` does
    Image.fromarray(encode_array(codec, rgb)).save(buffer, "JPEG", quality=60)
    expected = metrics.psnr(np.asarray(Image.open(io.BytesIO(decode(buffer.getvalue(), codec)))), rgb)
    assert report["results"]["per_image"][0]["psnr_jpeg60"] == pytest.approx(expected)


def test_api_decode_of_a_pil_jpeg_reads_its_comment(registered, tmp_path):
    import warnings

    from invgray_cli import api

    run("encode", photo(tmp_path / "p.png", 80, 64), "-o", tmp_path / "g.jpg", "--model", TINY_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the comment names the model: no "no chunk" warning
        out = api.decode(Image.open(tmp_path / "g.jpg"), device="cpu")
    assert out.size == (80, 64)
    bare = Image.open(io.BytesIO(_jpeg_without_comment(tmp_path / "g.jpg")))
    with pytest.warns(UserWarning, match="no invgray chunk"):  # no comment: the default model, said so
        api.decode(bare, device="cpu")


def _jpeg_without_comment(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(Image.open(path))).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_quality_needs_a_jpeg_output(registered, tmp_path):
    assert_one_line_error(run("encode", photo(tmp_path / "p.png"), "-o", tmp_path / "g.png", "--quality", "80"),
                          2, "--quality")
