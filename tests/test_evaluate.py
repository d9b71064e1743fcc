import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from invgray_cli import colour, metrics
from invgray_cli.cli.app import cli
from invgray_cli.codec.nets import Codec
from invgray_cli.eval.evaluate import evaluate_folder
from invgray_cli.eval.figures import PATTERN_GAIN, comparison_strip, difference_map, pattern_map
from invgray_cli.eval.scoring import METRIC_NAMES, PAPER_FIGURES
from invgray_cli.io.chunk import make_chunk
from invgray_cli.models.weights import save_weights
from invgray_cli.models.zoo import ModelInfo
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_photo(20, 30, 0)).save(folder / "a.png")
    Image.fromarray(_photo(17, 13, 1)).save(folder / "sub" / "b.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def weights(tmp_path: Path, tiny_model) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_weights(tiny_model, path, name="tiny.test")
    return path


def _codec(model) -> Codec:
    return Codec.from_model(model, ModelInfo("tiny.test", "0" * 64, model.divisibility, model.receptive_field), device="cpu")


def test_eval_json_shape_and_save_dir(photos, weights, tmp_path):
    save_dir = tmp_path / "strips"
    result = CliRunner().invoke(
        cli, ["eval", str(photos), "--weights", str(weights), "--device", "cpu", "--json", "--save-dir", str(save_dir)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["name"] == "invgray-eval" and report["description"]
    assert report["model"]["name"] == "tiny.test" and len(report["model"]["sha256"]) == 64
    assert set(report["versions"]) >= {"invgray", "torch", "numpy", "pillow", "python"}
    assert report["device"] == "cpu"
    assert report["paper"]["psnr"] == 36.02 and report["paper"]["gray_structure"] == 0.9799
    per_image = report["results"]["per_image"]
    assert [Path(r["input"]).name for r in per_image] == ["a.png", "b.png"]  # sorted, recursive
    assert (per_image[0]["width"], per_image[0]["height"]) == (30, 20)
    for record in per_image:
        assert set(record) == {"input", "set", "width", "height", *METRIC_NAMES, "pattern_strength"}
        assert record["pattern_strength"] == 1.0  # a --weights file of no shipped model: no gray floor
    mean = report["results"]["mean"]
    assert set(mean) == set(METRIC_NAMES)
    assert mean["ssim"] == pytest.approx(np.mean([r["ssim"] for r in per_image]))
    assert any("notes.txt" in note for note in report["results"]["skipped"])
    # one strip per image, 5 panels edge to edge, subfolders mirrored
    strip = Image.open(save_dir / "a.eval.png")
    assert strip.size == (5 * 30, 20) and strip.mode == "RGB"
    assert Image.open(save_dir / "sub" / "b.eval.png").size == (5 * 13, 17)
    assert "paper" in result.stderr and "mean of 2" in result.stderr


def test_evaluate_folder_goes_through_the_8bit_png_path(photos, tiny_model):
    codec = _codec(tiny_model)
    seen = []
    report = evaluate_folder([photos / "a.png"], codec, on_image=lambda i, n, r: seen.append((i, n)))
    assert seen == [(0, 1)]
    rgb = np.asarray(Image.open(photos / "a.png"))
    gray = encode_array(codec, rgb)
    restored = decode_array(codec, gray)
    record = report["results"]["per_image"][0]
    assert record["psnr"] == pytest.approx(metrics.psnr(restored, rgb))
    assert record["ssim"] == pytest.approx(metrics.ssim(restored, rgb))
    assert record["mae"] == pytest.approx(metrics.mae(restored, rgb))
    assert record["gray_structure"] == pytest.approx(metrics.gray_structure(gray, colour.luma_bt601(rgb)))
    assert record["gray_psnr"] == pytest.approx(metrics.gray_psnr(gray, colour.luma_bt601(rgb)))


def test_odd_tiny_and_thin_images(tmp_path, tiny_model):
    for name, shape in (("one.png", (1, 1, 3)), ("thin.png", (1, 300, 3)), ("odd.png", (9, 7, 3))):
        Image.fromarray(_photo(*shape[:2], seed=3)).save(tmp_path / name)
    report = evaluate_folder([tmp_path], _codec(tiny_model))
    assert report["results"]["count"] == 3
    assert all(0 <= r["ssim"] <= 1 for r in report["results"]["per_image"])


@dataclass(frozen=True)
class _LosslessGrayCodec:
    """Restores a gray-world photo exactly: PSNR is infinite, which JSON must carry as null."""

    info: ModelInfo = ModelInfo("identity.test", "f" * 64, 1, 0)
    device: torch.device = torch.device("cpu")
    tile: int | None = None
    precision: str = "fp32"

    sync_pattern: bool = False

    def run_encoder(self, photos: torch.Tensor, quantised: bool, on_tile=None) -> torch.Tensor:
        return photos[:, :1].clone()

    def run_decoder(self, grays: torch.Tensor, on_tile=None, net=None) -> list[np.ndarray]:
        return [gray.expand(3, -1, -1).permute(1, 2, 0).numpy().copy() for gray in grays]

    def chunk_text(self, strength: float = 1.0) -> dict[str, str]:
        return make_chunk(self.info.name, self.info.sha256, strength)

    def code_detector(self) -> None:
        return None


def test_perfect_restoration_gives_null_psnr_not_infinity(tmp_path):
    plane = _photo(12, 12, 4)[:, :, 0]
    Image.fromarray(np.repeat(plane[:, :, None], 3, axis=2)).save(tmp_path / "g.png")
    report = evaluate_folder([tmp_path / "g.png"], _LosslessGrayCodec())
    json.dumps(report, allow_nan=False)
    assert report["results"]["per_image"][0]["psnr"] is None
    assert report["results"]["mean"]["psnr"] is None
    assert report["results"]["mean"]["ssim"] == pytest.approx(1.0)


def test_limit_takes_the_first_images(photos, tiny_model):
    report = evaluate_folder([photos], _codec(tiny_model), limit=1)
    assert [Path(r["input"]).name for r in report["results"]["per_image"]] == ["a.png"]


def test_difference_map_scale_and_strip_layout():
    rgb = np.zeros((2, 3, 3), np.uint8)
    restored = np.zeros_like(rgb)
    restored[0, 0] = 16  # error 16 of 32 -> half scale
    restored[0, 1] = (100, 0, 0)  # mean error 33.3 -> clipped to full scale
    diff = difference_map(rgb, restored)
    assert diff[0, 0] == 128 and diff[0, 1] == 255 and diff[1, 1] == 0
    gray = np.full((2, 3), 7, np.uint8)
    strip = comparison_strip(rgb, gray, restored)
    assert strip.shape == (2, 15, 3)
    assert (strip[:, 3:6] == 7).all()


def test_pattern_map_amplifies_gray_minus_luma_and_names_its_scale():
    rgb = np.full((40, 120, 3), 100, np.uint8)  # luma exactly 100
    gray = np.full((40, 120), 100, np.uint8)
    gray[30:, 60:] = 103  # 3 levels of pattern -> 48
    panel = pattern_map(rgb, gray)
    assert panel.dtype == np.uint8 and panel.shape == (40, 120)
    assert (panel[30:, 60:] == 3 * PATTERN_GAIN).all() and (panel[20:30] == 0).all()
    assert panel[:12, :100].max() > 200  # the scale is written on the panel (anti-aliased text)


def test_sets_are_reported_apart_with_worst_and_fifth_percentile(photos, tiny_model, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(_photo(24, 24, 7)).save(other / "c.png")
    Image.fromarray(_photo(24, 24, 7)).save(other / "c.gray.png")  # invgray's own output: not a photo
    results = evaluate_folder([photos, other], _codec(tiny_model))["results"]
    assert [r["set"] for r in results["per_image"]] == [str(photos), str(photos), str(other)]
    assert list(results["sets"]) == [str(photos), str(other)]
    assert results["sets"][str(photos)]["count"] == 2 and results["sets"][str(other)]["count"] == 1
    structures = [r["gray_structure"] for r in results["per_image"]]
    assert results["gray_structure_min"] == min(structures)
    assert results["gray_structure_p5"] == pytest.approx(np.percentile(structures, 5))
    assert results["sets"][str(other)]["gray_structure_min"] == structures[2]
    first_two = results["sets"][str(photos)]["mean"]["psnr"]
    assert first_two == pytest.approx(np.mean([r["psnr"] for r in results["per_image"][:2]]))
    assert any("c.gray.png" in note for note in results["skipped"])


def test_paper_figures_are_the_papers():
    assert PAPER_FIGURES == {"psnr": 36.02, "ssim": 0.9681, "mae": 3.083, "gray_structure": 0.9799, "gray_psnr": None}


# ---------------------------------------------------------------- bad input


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["eval", *args, "--device", "cpu"])


def test_unreadable_file_fails_but_the_rest_is_measured(photos, weights):
    (photos / "broken.png").write_text("this is text, not a PNG")
    result = _invoke(str(photos), "--weights", str(weights), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["results"]["count"] == 2
    assert [Path(f["input"]).name for f in report["results"]["failed"]] == ["broken.png"]
    assert "broken.png" in result.stderr and "Traceback" not in result.output


def test_missing_path(tmp_path, weights):
    result = _invoke(str(tmp_path / "nope"), "--weights", str(weights))
    assert result.exit_code == 1
    assert "no such file or folder" in result.stderr and "Traceback" not in result.output


def test_folder_without_images(tmp_path, weights):
    (tmp_path / "empty").mkdir()
    result = _invoke(str(tmp_path / "empty"), "--weights", str(weights))
    assert result.exit_code == 1 and "no images found" in result.stderr


def test_stdin_is_refused(weights):
    result = _invoke("-", "--weights", str(weights))
    assert result.exit_code == 1 and "not stdin" in result.stderr


def test_missing_weights_file(photos, tmp_path):
    result = _invoke(str(photos), "--weights", str(tmp_path / "missing.safetensors"))
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_no_paths_is_a_usage_error():
    assert CliRunner().invoke(cli, ["eval"]).exit_code == 2


def test_strips_of_photos_that_share_a_stem_do_not_overwrite_each_other(tmp_path, tiny_model):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_photo(12, 12, 1)).save(folder / "x.png")
    Image.fromarray(_photo(12, 12, 2)).save(folder / "x.bmp")
    save_dir = tmp_path / "strips"
    evaluate_folder([folder], _codec(tiny_model), save_dir=save_dir)
    assert sorted(p.name for p in save_dir.iterdir()) == ["x.eval.png", "x.png.eval.png"]
