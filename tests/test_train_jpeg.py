"""JPEG in the training loop: the differentiable gray JPEG against Pillow's, per-crop qualities,
validation after a real JPEG, and the options that turn it on."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from invgray_cli.cli.app import cli
from invgray_cli.io.jpeg import jpeg_round_trip
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.cli.train import parse_range
from invgray_cli.train.jpeg import dct_matrix, jpeg_gray, quality_table
from invgray_cli.train.config import TrainConfig
from invgray_cli.train.loop import jpeg_draws, train
from invgray_cli.train.step import received_gray
from invgray_cli.train.validation import is_best, selection_score

from test_train import TINY_NET, photo_array, photos, tiny_config  # noqa: F401  (fixture)


def _textured_gray(size: int = 64, seed: int = 0) -> np.ndarray:
    return np.asarray(Image.fromarray(photo_array(size, size, seed)).convert("L"))


def test_quality_tables_are_libjpegs():
    assert quality_table(50).tolist()[0][:4] == [16, 11, 10, 16]  # the standard table itself
    assert quality_table(100).eq(1).all()
    assert quality_table(90)[7, 7] == 20  # 99 * 0.2, rounded
    assert quality_table(1).eq(255).all()  # the baseline clamp
    with pytest.raises(ValueError):
        quality_table(0)


def test_dct_is_orthonormal():
    matrix = dct_matrix()
    assert torch.allclose(matrix @ matrix.T, torch.eye(8), atol=1e-6)


@pytest.mark.parametrize("quality", [95, 75, 50])
def test_differentiable_jpeg_reads_back_what_pillow_writes(quality):
    gray = _textured_gray()
    pillow = jpeg_round_trip(gray, quality).astype(float)
    ours = jpeg_gray(torch.from_numpy(gray / 255.0).float()[None, None], [quality])[0, 0].numpy() * 255
    assert np.abs(ours - pillow).mean() < 0.25 * np.abs(pillow - gray).mean()  # far closer than the loss itself
    assert np.abs(ours - pillow).max() <= 8


def test_jpeg_round_trip_matches_a_file_written_by_pillow():
    gray = _textured_gray(40)
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "JPEG", quality=80)
    assert np.array_equal(jpeg_round_trip(gray, 80), np.asarray(Image.open(buffer)))


def test_jpeg_gradient_reaches_the_gray():
    gray = torch.from_numpy(_textured_gray(32) / 255.0).float()[None, None].requires_grad_(True)
    jpeg_gray(gray, [60]).sum().backward()
    assert gray.grad is not None and float(gray.grad.abs().sum()) > 0


def test_received_gray_applies_each_crops_own_quality():
    gray = torch.from_numpy(np.stack([_textured_gray(32, s) for s in range(3)]) / 255.0).float()[:, None]
    received = received_gray(gray, [None, 30, 90])
    assert torch.equal(received[0], gray[0])  # lossless crop untouched
    assert torch.equal(received[1:2], jpeg_gray(gray[1:2], [30]))
    assert torch.equal(received[2:3], jpeg_gray(gray[2:3], [90]))
    assert received_gray(gray, None) is gray
    assert received_gray(gray, [None, None, None]) is gray


def test_jpeg_draws_follow_the_share_and_range():
    rng = np.random.default_rng(0)
    cfg = TrainConfig(data=[], batch=400, jpeg_share=0.5, jpeg_qualities=(60, 70))
    draws = jpeg_draws(cfg, rng)
    drawn = [q for q in draws if q is not None]
    assert 150 < len(drawn) < 250 and min(drawn) >= 60 and max(drawn) <= 70 and len(set(drawn)) == 11
    assert jpeg_draws(TrainConfig(data=[], batch=4), rng) is None


def test_selection_prefers_the_jpeg_score_when_validated_after_jpeg():
    cfg = TrainConfig(data=[], gray_mean_floor=0.9, gray_image_floor=0.8)
    plain = {"psnr": 40.0, "gray_structure": 0.95, "gray_structure_min": 0.9}
    lossless_winner = {**plain, "psnr": 41.0, "psnr_jpeg": 30.0}
    jpeg_winner = {**plain, "psnr": 39.0, "psnr_jpeg": 31.0}
    assert selection_score(plain) == 40.0 and selection_score(jpeg_winner) == 31.0
    assert is_best(jpeg_winner, [lossless_winner], cfg)
    assert not is_best(lossless_winner, [jpeg_winner], cfg)


def test_training_with_jpeg_in_the_loop_validates_after_jpeg(photos, tmp_path):  # noqa: F811
    cfg = tiny_config(photos, jpeg_share=1.0, jpeg_qualities=(50, 60), val_jpeg=75, steps=2, stage2_fraction=0.0)
    model = train(cfg, tmp_path / "j.ckpt", log=lambda m: None)
    state = torch.load(tmp_path / "j.ckpt", weights_only=False)
    last = state["history"][-1]
    assert "psnr_jpeg" in last and all("psnr_jpeg" in s for s in last["sets"].values())
    assert isinstance(model, InvertibleGray)


def test_jpeg_training_refuses_crops_off_the_8px_grid(photos, tmp_path):  # noqa: F811
    from invgray_cli.errors import InvgrayError

    with pytest.raises(InvgrayError, match="multiple of 8"):
        train(tiny_config(photos, jpeg_share=0.5, crop=36), tmp_path / "k.ckpt", log=lambda m: None)


def test_quality_range_option():
    assert parse_range("50-95") == (50, 95) and parse_range("80") == (80, 80)
    result = CliRunner().invoke(cli, ["train", ".", "--out", "x.ckpt", "--jpeg-quality", "95-50"])
    assert result.exit_code == 2 and "LOW <= HIGH" in result.output


def test_net_config_carriers_survive_json_and_keep_old_files_identical():
    import json

    custom = NetConfig(carriers=((2, 0), (0, 2)))
    assert NetConfig(**json.loads(json.dumps(custom.to_dict()))) == custom
    assert "carriers" not in NetConfig().to_dict()  # shipped files' metadata stays as written
    patterns = InvertibleGray(NetConfig(carriers=((2, 0), (0, 2)))).encoder_linear.weight
    assert not torch.equal(patterns, InvertibleGray(NetConfig()).encoder_linear.weight)
    assert TINY_NET.carriers is None


def test_differentiable_jpeg_stays_fp32_under_autocast():
    gray = torch.from_numpy(_textured_gray(32) / 255.0).float()[None, None]
    plain = jpeg_gray(gray, [95])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = jpeg_gray(gray, [95])
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)
