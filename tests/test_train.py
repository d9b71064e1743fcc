"""Training code: data pipeline, loss terms, schedule, the loop (resume, seeds), `invgray train`,
the optional VGG-19 term, and the net's linear carrier initialisation.

Everything runs on synthetic photos written into tmp_path and a width-8 net, a few steps long.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from invgray_cli.metrics import gray_structure
from invgray_cli.colour import rgb_to_luma
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.train import losses
from invgray_cli.train.data import augment_colour, find_images, load_all, sample_crops
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array
from invgray_cli.train.checkpoints import load_checkpoint
from invgray_cli.train.config import TrainConfig
from invgray_cli.train.loop import StepReport, learning_rate, parameter_groups, stage_weights, train
from invgray_cli.train.step import compute_losses
from invgray_cli.train.validation import validate

TINY_NET = NetConfig(width=8, encoder_blocks=1, decoder_blocks=1)


# ---------------------------------------------------------------- synthetic photos


def photo_array(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus texture everywhere, uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.uniform(0, 2 * np.pi, 3)
    smooth = np.stack([128 + 90 * np.sin(2.5 * x + 1.5 * y + p) for p in phase], axis=-1)
    texture = 25 * np.sin(0.9 * np.arange(width))[None, :, None] * np.cos(0.7 * np.arange(height))[:, None, None]
    noise = rng.normal(0, 8, (height, width, 3))
    return np.clip(smooth + texture + noise, 0, 255).astype(np.uint8)


def write_photo(path: Path, height: int = 64, width: int = 80, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo_array(height, width, seed)).save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    write_photo(folder / "a.png", 64, 80, seed=1)
    write_photo(folder / "sub" / "b.png", 72, 64, seed=2)
    write_photo(folder / "c.png", 66, 70, seed=3)  # not a multiple of 4: validation crops it
    return folder


def tiny_config(photos: Path, **changes) -> TrainConfig:
    base = dict(data=[str(photos)], val=[str(photos)], steps=4, batch=2, crop=32, val_every=2,
                checkpoint_every=2, net=TINY_NET.to_dict(), stage2_fraction=0.25)
    return TrainConfig(**{**base, **changes})


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- data


def test_find_images_is_recursive_sorted_and_skips_other_files(tmp_path):
    for name in ("b.png", "a.JPG", "sub/deeper/c.webp", "sub/d.jpeg", "notes.txt", "sub/e.npy"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_images([tmp_path])
    assert found == sorted(tmp_path / n for n in ("a.JPG", "b.png", "sub/d.jpeg", "sub/deeper/c.webp"))
    # a file named directly is taken as it is; folders and files mix
    assert find_images([tmp_path / "sub" / "d.jpeg", tmp_path / "sub" / "deeper"]) == sorted(
        [tmp_path / "sub" / "d.jpeg", tmp_path / "sub" / "deeper" / "c.webp"])


def test_load_all_drops_photos_smaller_than_a_crop(tmp_path):
    big = write_photo(tmp_path / "big.png", 40, 48)
    small = write_photo(tmp_path / "small.png", 31, 90)
    images = load_all([big, small], min_side=32)
    assert len(images) == 1 and images[0].shape == (40, 48, 3) and images[0].dtype == np.uint8
    np.testing.assert_array_equal(images[0], np.asarray(Image.open(big)))


def _coordinate_image(height: int, width: int) -> np.ndarray:
    """R = x, G = y: every pixel tells where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x, y, (x + y) % 256], axis=-1).astype(np.uint8)


def _dihedral_variants(crop: np.ndarray) -> list[np.ndarray]:
    variants = []
    for transpose in (False, True):
        c = crop.transpose(1, 0, 2) if transpose else crop
        for flip_y in (False, True):
            for flip_x in (False, True):
                variants.append(c[::-1 if flip_y else 1, ::-1 if flip_x else 1])
    return variants


def test_sample_crops_are_flipped_windows_of_the_photos_and_seeded():
    image = _coordinate_image(90, 70)
    batch = sample_crops([image], 64, 16, np.random.default_rng(5))
    assert batch.shape == (64, 3, 16, 16) and batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    as_uint8 = torch.round(batch * 255).to(torch.uint8)
    assert torch.allclose(as_uint8.float() / 255, batch, atol=1e-7)  # exact multiples of 1/255

    orientations = set()
    for crop in as_uint8.permute(0, 2, 3, 1).numpy():
        matches = []
        for k, variant in enumerate(_dihedral_variants(crop)):
            x0, y0 = int(variant[0, 0, 0]), int(variant[0, 0, 1])
            if np.array_equal(variant, image[y0 : y0 + 16, x0 : x0 + 16]):
                matches.append(k)
        assert matches, "a crop is not a flipped/transposed window of the photo"
        orientations.add(matches[0])
    assert len(orientations) == 8  # all flips and transposes do happen

    again = sample_crops([image], 64, 16, np.random.default_rng(5))
    other = sample_crops([image], 64, 16, np.random.default_rng(6))
    assert torch.equal(batch, again) and not torch.equal(batch, other)


def test_sample_crops_draw_from_every_photo():
    images = [np.full((20, 20, 3), v, np.uint8) for v in (10, 100, 200)]
    batch = sample_crops(images, 30, 8, np.random.default_rng(0))
    assert set(torch.round(batch[:, 0, 0, 0] * 255).int().tolist()) == {10, 100, 200}


def test_augment_colour_leaves_neutral_gray_unchanged():
    levels = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    gray = levels.expand(4, 3, 4, 4).contiguous()
    out = augment_colour(gray, torch.Generator().manual_seed(0), probability=1.0)
    torch.testing.assert_close(out, gray, atol=1e-5, rtol=0)


def test_augment_colour_changes_hue_but_keeps_the_luma():
    rng = np.random.default_rng(0)
    rgb = torch.from_numpy(rng.uniform(0.4, 0.6, (6, 3, 8, 8))).float()  # mild colours: no clipping
    out = augment_colour(rgb, torch.Generator().manual_seed(1), probability=1.0)
    assert (out - rgb).abs().amax(dim=(1, 2, 3)).min() > 0.01  # every sample recoloured
    torch.testing.assert_close(rgb_to_luma(out), rgb_to_luma(rgb), atol=1e-5, rtol=0)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_augment_colour_probability_and_seed():
    rgb = torch.from_numpy(np.random.default_rng(1).uniform(0, 1, (8, 3, 6, 6))).float()
    untouched = augment_colour(rgb, torch.Generator().manual_seed(0), probability=0.0)
    torch.testing.assert_close(untouched, rgb, atol=1e-5, rtol=0)
    a = augment_colour(rgb, torch.Generator().manual_seed(3), probability=0.5)
    b = augment_colour(rgb, torch.Generator().manual_seed(3), probability=0.5)
    c = augment_colour(rgb, torch.Generator().manual_seed(4), probability=0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a - rgb).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert 0 < int(changed.sum()) < 8  # roughly half of the samples


# ---------------------------------------------------------------- losses


def _luma(seed: int = 0, size: int = 32) -> torch.Tensor:
    return rgb_to_luma(as_tensor(photo_array(size, size, seed)))


def test_lightness_loss_is_a_hinge_at_70_levels():
    luma = torch.full((1, 1, 8, 8), 0.5)
    for levels in (0.0, 30.0, -60.0, 69.0, -69.0):
        assert float(losses.lightness_loss(luma + levels / 255, luma)) == 0.0
    assert float(losses.lightness_loss(luma + 80 / 255, luma)) == pytest.approx(10 / 255, abs=1e-6)
    assert float(losses.lightness_loss(luma - 90 / 255, luma)) == pytest.approx(20 / 255, abs=1e-6)
    half = luma.clone()
    half[..., :4] += 75 / 255  # half the pixels 5 levels past the hinge
    assert float(losses.lightness_loss(half, luma)) == pytest.approx(2.5 / 255, abs=1e-6)


def test_quantisation_loss_measures_distance_to_8_bit_levels():
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16)
    assert float(losses.quantisation_loss(levels / 255)) < 1e-7
    halfway = (levels[..., :15, :] + 0.5) / 255
    assert float(losses.quantisation_loss(halfway)) == pytest.approx(0.5 / 255, abs=1e-6)
    quarter = (levels + 0.25) / 255
    assert float(losses.quantisation_loss(quarter)) == pytest.approx(0.25 / 255, abs=1e-6)


def test_quantise_round_is_straight_through():
    gray = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = losses.quantise(gray, "round")
    assert torch.equal(out.detach(), torch.round(gray.detach() * 255) / 255)
    upstream = torch.randn(out.shape)
    (out * upstream).sum().backward()
    torch.testing.assert_close(gray.grad, upstream)


def test_quantise_noise_is_within_half_a_level_with_identity_gradient():
    gray = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = losses.quantise(gray, "noise")
    difference = (out - gray).detach()
    assert float(difference.abs().max()) <= 0.5 / 255 + 1e-7 and float(difference.abs().max()) > 0.2 / 255
    out.sum().backward()
    torch.testing.assert_close(gray.grad, torch.ones_like(gray))
    assert losses.quantise(gray, "none") is gray


def test_contrast_and_local_structure_are_zero_for_the_luma_itself():
    luma = _luma()
    assert float(losses.contrast_loss(luma, luma)) == 0.0
    assert float(losses.local_structure_loss(luma, luma)) == 0.0


def test_contrast_and_local_structure_penalise_a_noisy_gray():
    luma = _luma()
    noisy = luma + 0.05 * torch.randn(luma.shape, generator=torch.Generator().manual_seed(0))
    assert float(losses.contrast_loss(noisy, luma)) > 1e-3
    assert float(losses.local_structure_loss(noisy, luma)) > 1e-4


def test_contrast_loss_ignores_a_2x2_zero_mean_pattern_but_not_a_coarse_change():
    """The hidden code is a fine zero-mean texture; coarse contrast must follow the luma."""
    luma = _luma()
    pattern = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16).view(1, 1, 32, 32)
    assert float(losses.contrast_loss(luma + 0.05 * pattern, luma)) < 1e-6
    shifted = luma.clone()
    shifted[..., :, :16] += 0.1  # a regional change of contrast
    assert float(losses.contrast_loss(shifted, luma)) > 1e-3


def test_local_variance_of_flat_and_checkerboard_images():
    flat = torch.full((1, 1, 12, 12), 0.3)
    assert float(losses.local_variance(flat).abs().max()) < 1e-6
    board = 0.5 + 0.1 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(6, 6).view(1, 1, 12, 12)
    interior = losses.local_variance(board)[..., 2:-2, 2:-2]
    torch.testing.assert_close(interior, torch.full_like(interior, 0.01 * (1 - 1 / 625)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_structure_term_is_what_eval_measures(dtype, tolerance):
    luma = _luma(seed=4, size=40)[0, 0].double()
    gray = (luma + 0.04 * torch.randn(luma.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    gray = gray.clamp(0, 1)
    measured = gray_structure((gray * 255).numpy(), (luma * 255).numpy(), data_range=255.0)
    trained = losses.structure_term(gray[None, None].to(dtype), luma[None, None].to(dtype))
    assert trained.shape == (1,)
    assert 0.5 < measured < 0.99  # a gray that is neither identical nor unrelated
    assert float(trained[0]) == pytest.approx(measured, abs=tolerance)


def test_compute_losses_reaches_the_encoder_through_rounding(tiny_model):
    """Straight-through rounding: the colour error alone must train the encoder."""
    model = tiny_model.train()
    rgb = as_tensor(photo_array(16, 16))
    only_mse = losses.LossWeights(invertibility=1.0, conformity=0.0, quantisation=0.0)
    total, terms = compute_losses(model, rgb, only_mse, "round")
    total.backward()
    assert set(terms) == {"total", "mse", "light", "contrast", "locvar", "struct", "window", "quant"}
    assert all(math.isfinite(v) for v in terms.values())
    assert terms["total"] == pytest.approx(terms["mse"], rel=1e-6)
    assert float(model.encoder[0].weight.grad.abs().sum()) > 0
    assert float(model.decoder[0].weight.grad.abs().sum()) > 0


def test_compute_losses_weights_the_structure_hinge(tiny_model):
    rgb = as_tensor(photo_array(16, 16))
    plain = losses.LossWeights(invertibility=0.0, conformity=1.0, contrast=0.0, local_structure=0.0,
                               structure_hinge=0.0)
    hinged = losses.LossWeights(**{**asdict(plain), "structure_hinge": 10.0, "structure_target": 2.0})
    with torch.no_grad():
        _, a = compute_losses(tiny_model, rgb, plain, "none")
        _, b = compute_losses(tiny_model, rgb, hinged, "none")
    assert a["total"] == pytest.approx(a["light"], abs=1e-7)
    assert b["total"] == pytest.approx(a["total"] + 10.0 * (2.0 - a["struct"]), rel=1e-5)


# ---------------------------------------------------------------- schedule


def test_learning_rate_decays_linearly_to_the_final_fraction():
    cfg = TrainConfig(data=[], steps=100, lr=2e-3, final_lr_fraction=0.05)
    assert learning_rate(0, cfg) == pytest.approx(2e-3)
    assert learning_rate(50, cfg) == pytest.approx(2e-3 * (1 + 0.05) / 2)
    assert learning_rate(100, cfg) == pytest.approx(2e-3 * 0.05)
    assert learning_rate(250, cfg) == pytest.approx(2e-3 * 0.05)  # never below the floor
    rates = [learning_rate(s, cfg) for s in range(101)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    steps = np.diff(rates)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)


def test_parameter_groups_slow_down_only_the_linear_carrier_paths():
    model = InvertibleGray(TINY_NET)
    cfg = TrainConfig(data=[], linear_lr_scale=0.02)
    trunks, linear = parameter_groups(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in linear["params"]} == {
        "encoder_linear.weight", "encoder_linear.bias", "decoder_linear.weight", "decoder_linear.bias"}
    assert (trunks["lr_scale"], linear["lr_scale"]) == (1.0, 0.02)
    every = [id(p) for group in (trunks, linear) for p in group["params"]]
    assert sorted(every) == sorted(names)  # each parameter exactly once


@pytest.mark.parametrize("steps, first_stage2", [(4, 3), (10, 8), (16, 12), (5000, 3750), (7, 6)])
def test_stage_two_is_the_last_quarter(steps, first_stage2):
    assert TrainConfig(data=[]).stage2_fraction == 0.0  # off by default: it cost gray structure
    cfg = TrainConfig(data=[], steps=steps, stage2_fraction=0.25)
    stages = [stage_weights(s, cfg)[0] for s in range(steps)]
    assert stages == [1] * first_stage2 + [2] * (steps - first_stage2)


def test_stage_weights_follow_table_1():
    custom = asdict(losses.LossWeights(conformity=3.0, quantisation=0.5, contrast=0.7))
    cfg = TrainConfig(data=[], steps=20, stage2_fraction=0.5, stage1_quantiser="noise", weights=custom)
    stage, weights, quantiser = stage_weights(9, cfg)
    assert (stage, quantiser) == (1, "noise") and weights == losses.LossWeights(**custom)
    stage, weights, quantiser = stage_weights(10, cfg)
    assert (stage, quantiser) == (2, "round")
    assert weights == losses.LossWeights(**{**custom, "conformity": 1.5, "quantisation": 10.0})


# ---------------------------------------------------------------- the loop


def test_train_runs_checkpoints_and_validates(photos, tmp_path):
    out = tmp_path / "run.ckpt"
    reports: list[StepReport] = []
    lines: list[str] = []
    model = train(tiny_config(photos), out, on_report=reports.append, log=lines.append)

    assert [r.step for r in reports] == [1, 2, 3, 4] and all(r.total_steps == 4 for r in reports)
    assert [r.stage for r in reports] == [1, 1, 1, 2]
    assert [r.lr for r in reports] == [learning_rate(s, tiny_config(photos)) for s in range(4)]
    assert [r.validation is not None for r in reports] == [False, True, False, True]
    assert all(math.isfinite(v) for r in reports for v in r.terms.values())
    assert any("3 training and 3 validation photos" in line for line in lines)

    state = load_checkpoint(out)
    assert state["step"] == 4 and state["config"] == asdict(tiny_config(photos))
    last_lr = learning_rate(3, tiny_config(photos))
    group_lrs = sorted(g["lr"] for g in state["optimizer"]["param_groups"])
    assert group_lrs == pytest.approx(sorted([last_lr, last_lr * tiny_config(photos).linear_lr_scale]))
    history = state["history"]
    assert [h["step"] for h in history] == [2, 4]
    for h in history:
        assert 5.0 < h["psnr"] < 100.0 and -1.0 <= h["gray_structure"] <= 1.0
    assert history[-1] == {"step": 4, **reports[-1].validation}

    assert not model.training and model.config == TINY_NET
    assert_same_weights(model.state_dict(), state["model"])
    torch.manual_seed(0)
    untrained = InvertibleGray(TINY_NET).state_dict()  # train() builds its net right after seeding
    assert any(not torch.equal(untrained[k], v) for k, v in model.state_dict().items())
    assert not list(tmp_path.glob("*.tmp"))


def test_validate_measures_what_eval_measures(tiny_model):
    """Whole photos at their own sizes through the codec path, scored as `invgray eval` scores them."""
    from invgray_cli.codec.nets import Codec
    from invgray_cli.eval.scoring import png_round_trip, score_image
    from invgray_cli.models.zoo import ModelInfo

    images = [photo_array(34, 45, seed=5), photo_array(24, 20, seed=6)]
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    measured = validate(tiny_model, images)
    assert tiny_model.training and all(p.requires_grad for p in tiny_model.parameters())  # untouched
    assert_same_weights(tiny_model.state_dict(), before)
    stored_by = Codec.from_model(tiny_model, ModelInfo("t", "", tiny_model.divisibility, tiny_model.receptive_field),
                                 device="cpu")
    codec = stored_by.with_sync_pattern(False)  # validation decodes with the nets alone; the pattern goes around them
    scores = []
    for image in images:
        gray = png_round_trip(encode_array(codec, image)).gray
        score = score_image(image, gray, decode_array(codec, gray))
        stored = png_round_trip(encode_array(stored_by, image)).gray  # the gray structure is the stored gray's
        scores.append({**score, "gray_structure": score_image(image, stored, decode_array(codec, gray))["gray_structure"]})
    assert measured["psnr"] == pytest.approx(np.mean([s["psnr"] for s in scores]), abs=1e-9)
    assert measured["gray_structure"] == pytest.approx(np.mean([s["gray_structure"] for s in scores]), abs=1e-9)
    assert measured["gray_structure_min"] == pytest.approx(min(s["gray_structure"] for s in scores), abs=1e-9)


# Bit-for-bit resume is promised, and tested, on the CPU only: CUDA's backward kernels add in no set
# order (atomics), so two CUDA runs of the same steps differ in the last bits anyway; there a resumed
# run is the same run to float tolerance. The other training tests run where `auto` puts them.
def test_resume_after_interruption_gives_the_uninterrupted_weights(photos, tmp_path):
    straight = train(tiny_config(photos, device="cpu"), tmp_path / "straight.ckpt", log=lambda m: None)

    out = tmp_path / "interrupted.ckpt"

    class Stop(Exception):
        pass

    def stop_at_3(report: StepReport) -> None:
        if report.step == 3:  # the step-2 checkpoint is on disk, step 3 is lost
            raise Stop

    with pytest.raises(Stop):
        train(tiny_config(photos, device="cpu"), out, on_report=stop_at_3, log=lambda m: None)
    assert load_checkpoint(out)["step"] == 2

    lines: list[str] = []
    reports: list[StepReport] = []
    resumed = train(tiny_config(photos, device="cpu"), out, on_report=reports.append, log=lines.append)
    assert any("resumed" in line and "step 2" in line for line in lines)
    assert [r.step for r in reports] == [3, 4]
    assert_same_weights(resumed.state_dict(), straight.state_dict())
    assert load_checkpoint(out)["history"] == load_checkpoint(tmp_path / "straight.ckpt")["history"]


def test_seed_decides_the_weights(photos, tmp_path):
    cfg = tiny_config(photos, steps=2, val=[], checkpoint_every=100)
    a = train(cfg, tmp_path / "a.ckpt", log=lambda m: None).state_dict()
    b = train(cfg, tmp_path / "b.ckpt", log=lambda m: None).state_dict()
    c = train(tiny_config(photos, steps=2, val=[], seed=1), tmp_path / "c.ckpt", log=lambda m: None).state_dict()
    assert_same_weights(a, b)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert load_checkpoint(tmp_path / "a.ckpt")["history"] == []  # no validation folder, no history


def test_resuming_a_finished_run_changes_nothing(photos, tmp_path):
    out = tmp_path / "done.ckpt"
    first = train(tiny_config(photos, steps=2, val=[]), out, log=lambda m: None)
    reports: list[StepReport] = []
    again = train(tiny_config(photos, steps=2, val=[]), out, on_report=reports.append, log=lambda m: None)
    assert reports == []
    assert_same_weights(first.state_dict(), again.state_dict())


# ---------------------------------------------------------------- invgray train


def _invoke(*args: object):
    from invgray_cli.cli.app import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_train_command_exports_loadable_weights(photos, tmp_path):
    from invgray_cli.models.weights import load_weights

    out, weights = tmp_path / "cli.ckpt", tmp_path / "w.safetensors"
    common = ("train", photos, "--out", out, "--steps", 2, "--batch", 2, "--crop", 32, "--width", 8,
              "--blocks", 1, "--val", photos, "--val-every", 1, "--log-every", 1)
    result = _invoke(*common, "--export", weights)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # people read stderr; nothing pollutes stdout
    assert "step 2/2" in result.stderr and "val psnr" in result.stderr and f"wrote {weights}" in result.stderr

    loaded = load_weights(weights).net
    assert loaded.config == TINY_NET
    assert_same_weights(loaded.state_dict(), load_checkpoint(out)["model"])
    assert load_checkpoint(out)["config"]["net"] == TINY_NET.to_dict()

    again = _invoke(*common)  # an existing checkpoint is resumed, here already finished
    assert again.exit_code == 0 and "resumed from" in again.stderr


def _one_user_error(result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("invgray: error:")]
    assert result.exit_code in (1, 2) and len(errors) == 1, result.stderr
    assert "unexpected" not in errors[0]  # 'unexpected' marks an internal error, i.e. a bug
    return errors[0]


TINY_ARGS = ("--steps", 2, "--batch", 2, "--width", 8, "--blocks", 1, "--log-every", 1)


@pytest.mark.parametrize("case", ["empty folder", "photos smaller than the crop", "crop not a multiple of the scale",
                                  "resume with another architecture"])
def test_train_command_bad_input_is_a_one_line_user_error(photos, tmp_path, case):
    (tmp_path / "empty").mkdir()
    write_photo(tmp_path / "small" / "tiny.png", 20, 20)
    out = tmp_path / "x.ckpt"
    if case == "resume with another architecture":
        assert _invoke("train", photos, "--out", out, "--crop", 32, *TINY_ARGS).exit_code == 0
        before = out.read_bytes()
        result = _invoke("train", photos, "--out", out, "--crop", 32, *TINY_ARGS, "--width", 16)
        _one_user_error(result)
        assert out.read_bytes() == before
        return
    folder, crop = {"empty folder": ("empty", 32), "photos smaller than the crop": ("small", 32),
                    "crop not a multiple of the scale": ("photos", 30)}[case]
    _one_user_error(_invoke("train", tmp_path / folder, "--out", out, "--crop", crop, *TINY_ARGS))
    assert not out.exists()


def test_train_command_out_in_a_new_folder(photos, tmp_path):
    out = tmp_path / "new" / "run.ckpt"
    result = _invoke("train", photos, "--out", out, "--crop", 32, *TINY_ARGS)
    if result.exit_code == 0:  # either the folder is made ...
        assert load_checkpoint(out)["step"] == 2
    else:  # ... or the run is refused before any step is spent
        _one_user_error(result)
        assert "step 1" not in result.stderr


# ---------------------------------------------------------------- VGG-19 conv4_4 term

# torchvision's vgg19().features: (index, out channels) of each conv, 'M' pools at 4, 9, 18, 27, 36
_TORCHVISION_VGG19_CONVS = [(0, 64), (2, 64), (5, 128), (7, 128), (10, 256), (12, 256), (14, 256), (16, 256),
                            (19, 512), (21, 512), (23, 512), (25, 512), (28, 512)]


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A random state dict in torchvision's key layout (one conv past conv4_4, a classifier tensor)."""
    generator = torch.Generator().manual_seed(0)
    state, channels = {}, 3
    for index, width in _TORCHVISION_VGG19_CONVS:
        std = math.sqrt(2.0 / (9 * channels))
        state[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3, generator=generator) * std
        state[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.01
        channels = width
    state["classifier.0.weight"] = torch.zeros(4, 4)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


def test_vgg_contrast_loads_torchvision_layout(vgg_file):
    from invgray_cli.train.vgg import VGGContrast

    vgg = VGGContrast(vgg_file)
    state = torch.load(vgg_file, weights_only=True)
    for index, _ in _TORCHVISION_VGG19_CONVS[:-1]:
        assert torch.equal(vgg.features[index].weight, state[f"features.{index}.weight"])
        assert torch.equal(vgg.features[index].bias, state[f"features.{index}.bias"])
    assert len(vgg.features) == 27  # ends with conv4_4's ReLU
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg_contrast_is_zero_for_a_replicated_gray_and_trains_the_gray(vgg_file):
    from invgray_cli.train.vgg import VGGContrast

    vgg = VGGContrast(vgg_file)
    rgb = as_tensor(photo_array(24, 24))
    luma = rgb_to_luma(rgb)
    assert float(vgg(luma, luma.repeat(1, 3, 1, 1))) < 1e-6
    gray = luma.clone().requires_grad_()
    loss = vgg(gray, rgb)
    assert loss.dim() == 0 and math.isfinite(float(loss.detach())) and float(loss.detach()) > 0
    loss.backward()
    assert float(gray.grad.abs().sum()) > 0


# ---------------------------------------------------------------- the net


def _linear_only(scale: int, gain: float) -> InvertibleGray:
    """The net with both trunks silenced: only the analytic carrier paths are left."""
    model = InvertibleGray(NetConfig(scale=scale, width=8, encoder_blocks=1, decoder_blocks=1, carrier_gain=gain))
    with torch.no_grad():
        for trunk in (model.encoder, model.decoder):
            trunk[-1].weight.zero_()
            trunk[-1].bias.zero_()
    return model.eval()


def _chroma(colour: tuple[int, int, int]) -> tuple[float, float]:
    """BT.601 (Cb, Cr) of a 0-255 colour, in levels."""
    cb = sum(w * c for w, c in zip((-0.168736, -0.331264, 0.5), colour))
    cr = sum(w * c for w, c in zip((0.5, -0.418688, -0.081312), colour))
    return cb, cr


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("gain", [0.15, 0.3])
@pytest.mark.parametrize("colour", [(180, 90, 60), (40, 120, 200), (128, 128, 128), (230, 200, 30)])
def test_carrier_code_restores_a_flat_colour(scale, gain, colour):
    model = _linear_only(scale, gain)
    size = 2 * scale
    rgb = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size) / 255
    cb, cr = _chroma(colour)
    luma = float(rgb_to_luma(rgb)[0, 0, 0, 0]) * 255
    with torch.no_grad():
        gray = model.encode(rgb)
        float_restored = model.decode(gray) * 255
        restored = model.decode(torch.round(gray * 255) / 255).clamp(0, 1) * 255

    # the carriers are zero-mean over each block: the block mean is the luma, pixels swing by the chroma
    swing = (gray * 255 - luma).abs()
    assert float((torch.nn.functional.avg_pool2d(gray * 255, scale) - luma).abs().max()) < 0.05
    assert float(swing.max()) <= gain * (abs(cb) + abs(cr)) / scale + 0.05
    if colour != (128, 128, 128):
        assert float(swing.max()) > 0.9 * gain * (abs(cb) + abs(cr)) / scale

    target = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1)
    # unrounded, the code is exact but for tanh's curvature: relative error <= (x / bound)^2 / 3
    # where x is the largest residual, (|Cb| + |Cr|) gain / scale for orthonormal +-1/scale carriers
    x = gain * (abs(cb) + abs(cr)) / scale / 255
    curvature = (x / model.config.max_residual) ** 2 / 3
    assert float((float_restored - target).abs().max()) <= 2 * (abs(cb) + abs(cr)) * curvature + 0.05
    # 8-bit rounding moves each gray pixel by <= 0.5 level; a carrier coefficient sums scale^2
    # pixels weighted by at most 1/scale (orthonormal) and the chroma it carries is 1/gain of it
    assert float((restored - target).abs().max()) <= 1.5 + 0.5 * scale * 1.772 / gain


@pytest.mark.parametrize("scale", [2, 4])
def test_silenced_trunks_fail_without_the_carrier_paths(scale):
    """The carrier test above can fail: without the linear decoder the colour is gone."""
    model = _linear_only(scale, 0.15)
    target = torch.tensor([180, 90, 60.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        model.decoder_linear.weight.zero_()
        restored = model.decode(model.encode(target.expand(1, 3, 8, 8) / 255)) * 255
    assert float((restored - target).abs().max()) > 20


def test_encode_stays_in_range_and_within_the_residual_bound(tiny_model):
    generator = torch.Generator().manual_seed(0)
    batch = torch.cat([torch.rand(2, 3, 12, 16, generator=generator), torch.zeros(1, 3, 12, 16),
                       torch.ones(1, 3, 12, 16)])
    with torch.no_grad():
        gray = tiny_model.encode(batch)
        restored = tiny_model.decode(gray)
    assert gray.shape == (4, 1, 12, 16) and restored.shape == (4, 3, 12, 16)
    assert float(gray.min()) >= 0.0 and float(gray.max()) <= 1.0
    residual = (gray - rgb_to_luma(batch)).abs()
    assert float(residual.max()) <= tiny_model.config.max_residual + 1e-6
    assert float(residual.max()) > 0.01  # the random nets do move the gray


def _reach(fn, channels: int, size: int) -> int:
    """Largest Chebyshev distance at which fn's output changes after one input pixel changes."""
    generator = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(1, channels, size, size, generator=generator)
    y = x.clone()
    c = size // 2
    y[..., c, c] += 0.2
    with torch.no_grad():
        changed = (fn(y) - fn(x)).abs().amax(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    return int(torch.maximum((rows - c).abs(), (cols - c).abs()).max())


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("blocks", [1, 2])
def test_receptive_fields_bound_and_nearly_meet_the_reach(scale, blocks):
    torch.manual_seed(0)
    model = InvertibleGray(NetConfig(scale=scale, width=4, encoder_blocks=blocks, decoder_blocks=blocks + 1))
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.2)
    assert model.divisibility == scale
    size = 2 * model.receptive_field + 4 * scale
    encoder_reach, decoder_reach = _reach(model.encode, 3, size), _reach(model.decode, 1, size)
    assert model.encoder_receptive_field - scale <= encoder_reach <= model.encoder_receptive_field
    assert model.decoder_receptive_field - scale <= decoder_reach <= model.decoder_receptive_field
    assert model.receptive_field == max(model.encoder_receptive_field, model.decoder_receptive_field)
    assert model.decoder_receptive_field > model.encoder_receptive_field


def test_odd_sizes_are_refused_by_the_unshuffle(tiny_model):
    with pytest.raises(RuntimeError):
        tiny_model.encode(torch.rand(1, 3, 9, 8))
