"""Training pieces that keep the hidden pattern out of sight: the per-window structure hinge,
smooth and synthetic content, the codec's border emulation, the gray rule, fine-tuning."""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from invgray_cli import metrics
from invgray_cli.cli.app import cli
from invgray_cli.codec.sync_pattern import add_sync_pattern
from invgray_cli.colour import luma_bt601, rgb_to_luma
from invgray_cli.models.weights import load_weights, save_weights
from invgray_cli.train import losses
from invgray_cli.cli.train import parse_loss_terms
from invgray_cli.train.data import augment_scale, augment_smooth, defocus, disc_kernel, scale_chroma, synthetic_art
from invgray_cli.codec.encode import encode_float, encode_array
from invgray_cli.train.checkpoints import load_checkpoint
from invgray_cli.train.config import TrainConfig
from invgray_cli.train.loop import draw_sync_patterns, stage_weights, train
from invgray_cli.train.step import compute_losses, cut_after_encoding, near_cut_edges, remake_border
from invgray_cli.train.validation import _validation_codec, is_best, meets_gray_rule, validate

from test_train import TINY_NET, as_tensor, photo_array, photos, tiny_config  # noqa: F401  (fixture)


def test_window_hinge_counts_only_windows_below_the_target():
    structure = torch.tensor([1.0, 0.99, 0.90, 0.80]).view(1, 1, 2, 2)
    assert float(losses.window_structure_hinge(structure, 0.95)) == pytest.approx((0.05 + 0.15) / 4)
    assert float(losses.window_structure_hinge(structure, 0.5)) == 0.0


def test_structure_map_is_low_where_a_pattern_sits_on_weak_texture():
    luma = torch.linspace(0.3, 0.4, 48).view(1, 1, 1, 48).expand(1, 1, 48, 48).clone()
    board = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(24, 24).view(1, 1, 48, 48)
    gray = luma.clone()
    gray[..., :, 24:] += 4 / 255 * board[..., :, 24:]  # a 4-level checkerboard on the right half only
    structure = losses.structure_map(gray, luma)
    assert structure.shape == (1, 1, 38, 38)
    assert float(structure[..., :, :8].min()) > 0.999  # left: the gray is the luma
    assert float(structure[..., :, -8:].max()) < 0.95  # right: the pattern shows on a gentle ramp
    assert float(losses.structure_term(gray, luma)) == pytest.approx(float(structure.mean()))


def test_defocus_is_a_normalised_disc_that_keeps_flat_colour():
    kernel = disc_kernel(3.0)
    assert kernel.shape == (7, 7) and float(kernel.sum()) == pytest.approx(1.0)
    assert float(kernel[0, 0]) == 0.0 and float(kernel[3, 0]) > 0  # a disc, not a box
    flat = torch.full((1, 3, 16, 16), 0.4)
    torch.testing.assert_close(defocus(flat, 3.0), flat)
    edge = torch.zeros(1, 3, 16, 16)
    edge[..., 8:] = 1.0
    blurred = defocus(edge, 3.0)
    assert 0.0 < float(blurred[0, 0, 8, 7]) < 1.0  # the step is softened


def test_scale_chroma_keeps_the_luma_and_scales_colour():
    rgb = torch.tensor([0.6, 0.4, 0.3]).view(1, 3, 1, 1)
    boosted = scale_chroma(rgb, torch.tensor([1.5]))
    torch.testing.assert_close(rgb_to_luma(boosted), rgb_to_luma(rgb), atol=1e-6, rtol=0)
    assert float((boosted - rgb_to_luma(boosted)).abs().sum()) > float((rgb - rgb_to_luma(rgb)).abs().sum())


def test_augment_smooth_probability_and_seed():
    rgb = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(augment_smooth(rgb, torch.Generator().manual_seed(1), probability=0.0), rgb)
    a = augment_smooth(rgb, torch.Generator().manual_seed(1), probability=1.0)
    b = augment_smooth(rgb, torch.Generator().manual_seed(1), probability=1.0)
    torch.testing.assert_close(a, b)
    # every sample is smoother than before: less energy in neighbour differences
    assert all(float((a[i, :, :, 1:] - a[i, :, :, :-1]).abs().mean()) < float((rgb[i, :, :, 1:] - rgb[i, :, :, :-1]).abs().mean())
               for i in range(6))


def test_synthetic_art_texture_share_zero_draws_nothing_extra():
    """--synthetic-texture 0 reproduces runs made before the texture existed: same draws, same crops."""
    a = synthetic_art(3, 32, torch.Generator().manual_seed(4), texture_probability=0.0)
    b = synthetic_art(3, 32, torch.Generator().manual_seed(4), texture_probability=0.0)
    textured = synthetic_art(3, 32, torch.Generator().manual_seed(4), texture_probability=1.0)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, textured)


def test_synthetic_art_is_smooth_colourful_and_seeded():
    art = synthetic_art(3, 32, torch.Generator().manual_seed(2))
    assert art.shape == (3, 3, 32, 32) and 0.0 <= float(art.min()) and float(art.max()) <= 1.0
    torch.testing.assert_close(art, synthetic_art(3, 32, torch.Generator().manual_seed(2)))
    assert float((art[..., 1:] - art[..., :-1]).abs().mean()) < 0.05  # mostly gradients and flat areas
    assert float((art - rgb_to_luma(art)).abs().mean()) > 0.01  # with colour


@pytest.mark.parametrize("cut", [(0, 0), (1, 0), (0, 3), (2, 1)])
def test_remake_border_shows_the_encoder_what_the_codec_shows_it(cut):
    """Encoding a crop whose border was re-made gives the codec's gray of the odd-sized photo."""
    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.net import InvertibleGray
    from invgray_cli.models.zoo import ModelInfo

    torch.manual_seed(0)
    model = InvertibleGray(TINY_NET)  # 4-px blocks, as the shipped nets: cuts of 0-3 px
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    photo = photo_array(16, 20, seed=3)
    h, w = 16 - cut[0], 20 - cut[1]
    codec = Codec.from_model(model, ModelInfo("tiny", "0" * 64, 4, model.receptive_field), device="cpu", tile=0)
    expected = encode_float(codec, np.ascontiguousarray(photo[:h, :w]))
    with torch.no_grad():
        remade = remake_border(as_tensor(photo), cut)
        got = model.encode(remade)[0, 0, :h, :w].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    torch.testing.assert_close(remade[..., :h, :w], as_tensor(photo)[..., :h, :w])


def test_border_cut_scores_only_the_photo_and_decodes_the_remade_gray(tiny_model):
    rgb = as_tensor(photo_array(16, 16))
    only_mse = losses.LossWeights(invertibility=1.0, conformity=0.0)
    with torch.no_grad():
        _, terms = compute_losses(tiny_model, rgb, only_mse, "none", border_cut=(2, 3))
        inner = remake_border(rgb, (2, 3))
        gray = tiny_model.encode(inner)
        restored = tiny_model.decode(remake_border(gray, (2, 3)))
        expected = torch.mean((restored[..., :14, :13] - inner[..., :14, :13]) ** 2)
        structure = losses.structure_term(gray, rgb_to_luma(inner))
    assert terms["mse"] == pytest.approx(float(expected), rel=1e-5)
    assert terms["struct"] == pytest.approx(float(structure.mean()), rel=1e-5)  # gray terms: the whole crop


def _validation(**per_set: tuple[float, float, float]) -> dict:
    sets = {name: {"psnr": p, "gray_structure": s, "gray_structure_min": m} for name, (p, s, m) in per_set.items()}
    return {"psnr": float(np.mean([v["psnr"] for v in sets.values()])), "sets": sets,
            "gray_structure": float(np.mean([v["gray_structure"] for v in sets.values()])),
            "gray_structure_min": min(v["gray_structure_min"] for v in sets.values())}


def test_gray_rule_holds_on_every_set_and_best_is_the_highest_psnr_that_meets_it():
    cfg = TrainConfig(data=[], gray_mean_floor=0.98, gray_image_floor=0.95)
    good = _validation(val=(39.0, 0.985, 0.96), art=(37.0, 0.981, 0.951))
    art_mean_low = _validation(val=(41.0, 0.99, 0.97), art=(40.0, 0.979, 0.96))
    one_image_low = _validation(val=(41.0, 0.99, 0.94), art=(40.0, 0.99, 0.96))
    assert meets_gray_rule(good, cfg)
    assert not meets_gray_rule(art_mean_low, cfg) and not meets_gray_rule(one_image_low, cfg)
    assert is_best(good, [art_mean_low, one_image_low], cfg)  # higher PSNRs that break the rule don't count
    assert not is_best(art_mean_low, [good], cfg)
    better = _validation(val=(39.5, 0.985, 0.96), art=(37.0, 0.981, 0.951))
    assert is_best(better, [good], cfg) and not is_best(good, [better], cfg)


def test_decoder_only_runs_keep_their_best_whatever_the_frozen_encoders_gray_scores():
    cfg = TrainConfig(data=[], decoder_only=True, gray_mean_floor=0.98, gray_image_floor=0.95)
    one_image_low = _validation(val=(41.0, 0.99, 0.94))
    assert not meets_gray_rule(one_image_low, cfg)
    assert is_best(one_image_low, [], cfg)
    assert not is_best(_validation(val=(40.0, 0.99, 0.94)), [one_image_low], cfg)


def test_histories_of_older_checkpoints_still_compare():
    cfg = TrainConfig(data=[])
    old = {"step": 500, "psnr": 39.0, "gray_structure": 0.985}  # before per-set validation
    assert meets_gray_rule(old, cfg)
    assert not is_best(_validation(val=(38.0, 0.99, 0.97)), [old], cfg)


def test_the_gray_rule_is_one_pair_of_numbers():
    from invgray_cli.train.config import GRAY_RULE

    cfg = TrainConfig(data=[])
    assert (cfg.gray_mean_floor, cfg.gray_image_floor) == GRAY_RULE == (0.98, 0.95)
    from invgray_cli.cli.train import train_command

    defaults = {p.name: p.default for p in train_command.params}
    assert (defaults["gray_mean_floor"], defaults["gray_image_floor"]) == GRAY_RULE


def test_parse_loss_terms_sets_known_fields_and_refuses_others():
    import click

    weights = parse_loss_terms(("window_hinge=0.25", "window_target=0.96"))
    assert weights == {**asdict(losses.LossWeights()), "window_hinge": 0.25, "window_target": 0.96}
    with pytest.raises(click.BadParameter, match="unknown loss term 'windowhinge'"):
        parse_loss_terms(("windowhinge=1",))
    with pytest.raises(click.BadParameter, match="needs a number"):
        parse_loss_terms(("window_hinge=lots",))


def test_init_starts_from_the_given_weights(photos, tmp_path, tiny_model):  # noqa: F811
    torch.manual_seed(3)
    start = tmp_path / "start.safetensors"
    from invgray_cli.models.net import InvertibleGray

    source = InvertibleGray(TINY_NET)
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_weights(source, start)
    cfg = tiny_config(photos, steps=1, val=[], lr=1e-12, init=str(start), smooth_augment=1.0,
                      synthetic_fraction=0.5, border_emulation=1.0)
    trained = train(cfg, tmp_path / "ft.ckpt", log=lambda m: None)
    for key, value in load_weights(start).net.state_dict().items():  # a vanishing step: still the start
        torch.testing.assert_close(trained.state_dict()[key], value, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cut", [(1, 0, 0, 0), (0, 2, 0, 3), (3, 1, 2, 1), (0, 0, 3, 3), (4, 0, 0, 5), (5, 6, 7, 4)])
def test_a_cut_gray_comes_back_onto_its_grid_with_the_kept_lines_where_they_were(cut):
    gray = torch.arange(16 * 20, dtype=torch.float32).view(1, 1, 16, 20)
    stored, (shift_y, shift_x), inside = cut_after_encoding(gray, cut, 4)
    top, left, bottom, right = cut
    assert (shift_y, shift_x) == (top // 4 * 4, left // 4 * 4)
    assert stored.shape[-2:] == (-(-(16 - shift_y - bottom) // 4) * 4, -(-(20 - shift_x - right) // 4) * 4)
    seen = gray[..., shift_y:, shift_x:]  # the encoded gray from the first block the cut kept
    assert torch.equal(stored[inside], seen[..., : stored.shape[-2], : stored.shape[-1]][inside])
    assert inside[1].stop - inside[1].start == 16 - top - bottom and inside[2].stop - inside[2].start == 20 - left - right
    if top % 4:  # the lines the cut took are stand-ins of the same grid phase from the next block
        torch.testing.assert_close(stored[..., 0, :], stored[..., 4, :])
    assert not torch.equal(stored, seen[..., : stored.shape[-2], : stored.shape[-1]])  # and not the lost lines themselves
    with pytest.raises(ValueError, match="less than two blocks"):
        cut_after_encoding(gray, (8, 0, 0, 0), 4)


def test_decoder_only_training_keeps_the_encoder_and_learns_from_the_stored_gray(photos, tmp_path):  # noqa: F811
    torch.manual_seed(3)
    start = tmp_path / "start.safetensors"
    from invgray_cli.models.net import InvertibleGray

    save_weights(InvertibleGray(TINY_NET), start)
    cfg = tiny_config(photos, steps=2, init=str(start), decoder_only=True, cut_edges=1.0, lr=1e-3)
    assert stage_weights(0, cfg)[2] == "stored" and stage_weights(1, cfg)[2] == "stored"
    trained = train(cfg, tmp_path / "dec.ckpt", log=lambda m: None).state_dict()
    before = load_weights(start).net.state_dict()
    encoder = [k for k in before if k.startswith("encoder")]
    decoder = [k for k in before if k.startswith("decoder")]
    assert encoder and decoder
    assert all(torch.equal(trained[k], before[k]) for k in encoder)
    assert any(not torch.equal(trained[k], before[k]) for k in decoder)
    history = load_checkpoint(tmp_path / "dec.ckpt")["history"]
    assert all("psnr_cut" in h for h in history)  # validated on cut grays too
    assert (tmp_path / "dec.best.ckpt").exists()  # kept whatever the untrained encoder's gray scores


def test_near_cut_edges_marks_the_kept_lines_beside_a_cut_top_or_left():
    near = near_cut_edges((12, 10), (2, 0, 1, 3), band=3)
    expected = torch.zeros(12, 10, dtype=torch.bool)
    expected[2:5, :7] = True  # rows 2-4 are the band below the cut top; the right 3 columns were cut
    assert torch.equal(near, expected)
    assert not near_cut_edges((8, 8), (0, 0, 2, 2), band=3).any()  # bottom and right cuts: no band
    both = near_cut_edges((8, 8), (1, 1, 0, 0), band=2)
    assert both[1:3, 1:].all() and both[1:, 1:3].all() and not both[3:, 3:].any() and not both[0].any()
    # an edge decoder of every side: the bands of the cut sides among those scored
    bottom = near_cut_edges((12, 10), (0, 2, 1, 3), band=3, scored=(False, False, True, True))
    expected = torch.zeros(12, 10, dtype=torch.bool)
    expected[8:11, 2:7] = True  # above the cut bottom (row 11 was cut)
    expected[:11, 4:7] = True  # beside the cut right (columns 7-9 were cut); the cut left is not scored
    whole_block = near_cut_edges((12, 10), (0, 0, 0, 0), band=2, scored=(False, False, True, False))
    assert whole_block[10:].all() and not whole_block[:10].any()  # a bottom cut by whole blocks: no line beyond
    assert torch.equal(bottom, expected)


def test_an_edge_decoder_trains_on_cut_tops_and_lefts_and_is_validated_in_its_codec(photos, tmp_path):  # noqa: F811
    from invgray_cli.errors import InvgrayError
    from invgray_cli.models.net import InvertibleGray

    torch.manual_seed(4)
    start = tmp_path / "start.safetensors"
    save_weights(InvertibleGray(TINY_NET), start)
    cfg = tiny_config(photos, steps=2, init=str(start), decoder_only=True, cut_edges=1.0, edge_band=6, lr=1e-3)
    trained = train(cfg, tmp_path / "edge.ckpt", log=lambda m: None).state_dict()
    before = load_weights(start).net.state_dict()
    assert all(torch.equal(trained[k], before[k]) for k in before if k.startswith("encoder"))
    history = load_checkpoint(tmp_path / "edge.ckpt")["history"]
    assert history and all("psnr_cut" in h for h in history)
    with pytest.raises(InvgrayError, match="pass --init"):
        train(tiny_config(photos, steps=1, edge_band=6, cut_edges=1.0, decoder_only=True), tmp_path / "x.ckpt",
              log=lambda m: None)


def test_an_edge_decoder_of_every_side_trains_on_cuts_of_any_side(photos, tmp_path, monkeypatch):  # noqa: F811
    from invgray_cli.models.net import InvertibleGray
    from invgray_cli.train import loop, step

    cuts, scored = [], []
    real_compute, real_near = loop.compute_losses, step.near_cut_edges

    def spy_compute(*args, **kwargs):
        cuts.append(args[7])
        return real_compute(*args, **kwargs)

    def spy_near(size, cut, band, sides=None):
        scored.append(sides)
        return real_near(size, cut, band, sides)

    monkeypatch.setattr(loop, "compute_losses", spy_compute)
    monkeypatch.setattr(step, "near_cut_edges", spy_near)
    torch.manual_seed(4)
    start = tmp_path / "start.safetensors"
    save_weights(InvertibleGray(TINY_NET), start)
    cfg = tiny_config(photos, steps=12, init=str(start), decoder_only=True, cut_edges=1.0, edge_band=6,
                      edge_all_cuts=True, lr=1e-3)
    train(cfg, tmp_path / "edge.ckpt", log=lambda m: None)
    assert all(any(cut) for cut in cuts)
    assert scored == [tuple(lines > 0 for lines in cut) for cut in cuts]  # the bands of the cut edges, each
    assert any(cut[2] for cut in cuts) and any(cut[3] for cut in cuts)
    assert max(max(cut) for cut in cuts) >= 4  # whole blocks too
    assert all("psnr_cut" in h for h in load_checkpoint(tmp_path / "edge.ckpt")["history"])


def test_edge_band_losses_score_only_the_band(tiny_model):  # noqa: F811
    rgb = as_tensor(photo_array(40, 40, seed=6))
    reach = tiny_model.encoder_receptive_field + tiny_model.decoder_receptive_field
    far = 1 + 4 + reach  # beyond what the band's colour can see
    changed = rgb.clone()
    changed[..., far:, far:] = 1.0 - changed[..., far:, far:]
    weights = losses.LossWeights()

    def mse(image, **band):
        return compute_losses(tiny_model, image, weights, "stored", edge_cut=(1, 1, 0, 0), **band)[1]["mse"]

    assert mse(rgb, edge_band=4) == mse(changed, edge_band=4)
    assert mse(rgb) != mse(changed)


def test_the_stored_quantiser_gives_exactly_the_gray_the_codec_stores(tiny_model):  # noqa: F811
    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.zoo import ModelInfo

    rgb = photo_array(32, 40, seed=5)
    info = ModelInfo("tiny", "", tiny_model.divisibility, tiny_model.receptive_field)
    stored = encode_array(Codec.from_model(tiny_model, info, device="cpu").with_sync_pattern(False), rgb)
    with torch.no_grad():
        gray = tiny_model.encode(as_tensor(rgb))
    seen = losses.quantise(gray.requires_grad_(), "stored")
    assert not seen.requires_grad
    np.testing.assert_array_equal((seen[0, 0] * 255).round().byte().numpy(), stored)


def test_train_command_takes_the_new_options(photos, tmp_path):  # noqa: F811
    out = tmp_path / "run.ckpt"
    result = CliRunner().invoke(cli, [str(a) for a in (
        "train", photos, "--out", out, "--steps", 2, "--batch", 2, "--crop", 32, "--width", 8, "--blocks", 1,
        "--val", photos, "--val-every", 1, "--loss", "window_hinge=0.5", "--smooth-augment", 0.5,
        "--synthetic", 0.5, "--border-emulation", 0.5, "--rule-mean", 0.5, "--rule-image", 0.2,
        "--upscale", 0.5, "--upscale-max", 2.5, "--weaken", 0.5, "--weaken-min", 0.6, "--sync-aware", 0.75)])
    assert result.exit_code == 0, result.output
    kept = load_checkpoint(out)["config"]
    assert (kept["upscale"], kept["upscale_max"], kept["weaken"], kept["weaken_min"]) == (0.5, 2.5, 0.5, 0.6)
    assert kept["sync_aware"] == 0.75
    assert f"| {photos} " in result.stderr and "(min " in result.stderr  # each validation set reported apart
    bad = CliRunner().invoke(cli, ["train", str(photos), "--out", str(tmp_path / "b.ckpt"), "--loss", "nope=1"])
    assert bad.exit_code == 2 and "unknown loss term" in bad.stderr


def test_upscaled_crops_are_smoother_per_pixel_and_the_rest_untouched():
    noise = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    assert torch.equal(augment_scale(noise, generator, probability=0.0), noise)
    scaled = augment_scale(noise, torch.Generator().manual_seed(2), probability=1.0, max_factor=3.0)
    assert scaled.shape == noise.shape and float(scaled.min()) >= 0.0 and float(scaled.max()) <= 1.0

    def roughness(images: torch.Tensor) -> torch.Tensor:
        return (images[..., :, 1:] - images[..., :, :-1]).abs().mean(dim=(1, 2, 3))

    assert bool((roughness(scaled) < 0.8 * roughness(noise)).all())  # every crop up-sampled by > 1


def test_a_weakened_gray_is_decoded_but_the_gray_terms_see_the_encoders_gray(tiny_model):  # noqa: F811
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    weights = losses.LossWeights()
    with torch.no_grad():
        _, plain = compute_losses(tiny_model, rgb, weights, "none")
        _, full = compute_losses(tiny_model, rgb, weights, "none", strengths=torch.ones(2))
        _, weak = compute_losses(tiny_model, rgb, weights, "none", strengths=torch.tensor([0.5, 0.5]))
    assert full == plain
    assert weak["mse"] != pytest.approx(plain["mse"], rel=1e-3)  # the decoder saw another gray
    assert weak["struct"] == plain["struct"] and weak["light"] == plain["light"]


def test_sync_aware_crops_are_judged_with_the_pattern_and_decoded_without_it(tiny_model):  # noqa: F811
    cfg = TrainConfig(data=[], batch=4, crop=32, sync_aware=0.5)
    sync = draw_sync_patterns(cfg, np.random.default_rng(5), torch.device("cpu"))
    assert sync.shape == (4, 1, 32, 32)
    added = [bool(p.abs().sum()) for p in sync]
    assert 0 < sum(added) < 4  # a share of the crops, drawn from the run's generator
    assert all(set((p[0] * 255).round().unique().tolist()) == {-1.0, 1.0} for p, a in zip(sync, added) if a)
    assert draw_sync_patterns(replace(cfg, sync_aware=0.0), np.random.default_rng(5), torch.device("cpu")) is None
    rgb = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    weights = losses.LossWeights()
    with torch.no_grad():
        _, plain = compute_losses(tiny_model, rgb, weights, "none")
        _, seen = compute_losses(tiny_model, rgb, weights, "none", sync=sync)
    assert seen["mse"] == plain["mse"]  # the decoder sees the gray with the pattern taken out
    assert seen["struct"] != plain["struct"]


def test_validation_measures_the_gray_as_stored_with_its_sync_pattern(tiny_model):  # noqa: F811
    flat = np.full((64, 64, 3), 128, dtype=np.uint8)
    flat[..., 0] = 140  # a flat colour: the tiny net's gray is nearly flat, the pattern is not
    gray = encode_array(_validation_codec(tiny_model), flat)
    stored = metrics.gray_structure(add_sync_pattern(gray), luma_bt601(flat))
    assert validate(tiny_model, [flat])["gray_structure"] == pytest.approx(stored)


# ---------------------------------------------------------------- rough edges a new user hit


def test_find_images_leaves_invgray_outputs_out_of_folders(tmp_path):
    from invgray_cli.train.data import find_images

    for name in ("a.jpg", "a.gray.png", "a.color.png", "b.eval.png", "c.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_images([tmp_path])] == ["a.jpg", "c.png"]
    assert find_images([tmp_path / "a.gray.png"]) == [tmp_path / "a.gray.png"]  # named on purpose: taken


def test_an_unreadable_photo_is_skipped_with_a_note(tmp_path):
    from invgray_cli.train.data import load_all

    from test_train import write_photo

    good = write_photo(tmp_path / "good.png", 40, 40)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    notes: list[str] = []
    images = load_all([bad, good], min_side=32, on_skip=notes.append)
    assert len(images) == 1 and images[0].shape == (40, 40, 3)
    assert notes == [f"skipped {bad}: not a readable image"]


@pytest.mark.parametrize("where", ["inside a step", "between steps"])
def test_ctrl_c_inside_a_step_resumes_bit_for_bit(photos, tmp_path, monkeypatch, where):  # noqa: F811
    from invgray_cli.train import loop

    cfg = tiny_config(photos, steps=5, checkpoint_every=100, val=[], smooth_augment=0.5, synthetic_fraction=0.5,
                      border_emulation=0.5, device="cpu")  # bit-for-bit on the CPU only (see test_train.py)
    straight = train(cfg, tmp_path / "straight.ckpt", log=lambda m: None).state_dict()

    real = loop.compute_losses
    calls = []

    def interrupt_in_step_4(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    def interrupt_after_step_3(report) -> None:
        if report.step == 3:
            raise KeyboardInterrupt

    out = tmp_path / "run.ckpt"
    if where == "inside a step":
        monkeypatch.setattr(loop, "compute_losses", interrupt_in_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, log=lambda m: None, on_report=interrupt_after_step_3 if where == "between steps" else lambda r: None)
    monkeypatch.setattr(loop, "compute_losses", real)
    assert load_checkpoint(out)["step"] == 3
    resumed = train(cfg, out, log=lambda m: None).state_dict()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_ctrl_c_keeps_the_steps_already_trained(photos, tmp_path):  # noqa: F811
    from invgray_cli.train.checkpoints import load_checkpoint

    out = tmp_path / "run.ckpt"
    cfg = tiny_config(photos, steps=6, checkpoint_every=100, val=[])

    def interrupt_at_3(report) -> None:
        if report.step == 3:
            raise KeyboardInterrupt

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, on_report=interrupt_at_3, log=lines.append)
    assert load_checkpoint(out)["step"] == 3 and any("interrupted: saved step 3" in line for line in lines)


def test_a_finished_run_says_so(photos, tmp_path):  # noqa: F811
    out = tmp_path / "run.ckpt"
    cfg = tiny_config(photos, steps=2, val=[])
    train(cfg, out, log=lambda m: None)
    lines: list[str] = []
    train(cfg, out, log=lines.append)
    assert any("already run 2 of 2 steps" in line for line in lines)


def test_exported_weights_are_readable_by_others(tmp_path):
    import os

    from invgray_cli.models.net import InvertibleGray

    path = tmp_path / "w.safetensors"
    previous = os.umask(0o022)
    try:
        save_weights(InvertibleGray(TINY_NET), path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_train_takes_the_codecs_device_option(photos, tmp_path):  # noqa: F811
    bad = CliRunner().invoke(cli, ["train", str(photos), "--out", str(tmp_path / "b.ckpt"), "--device", "tpu"])
    assert bad.exit_code == 2 and "'tpu' is not a device" in bad.stderr
    cfg = tiny_config(photos, steps=1, val=[], device="cpu")
    train(cfg, tmp_path / "cpu.ckpt", log=lambda m: None)
    from invgray_cli.train.checkpoints import load_checkpoint

    assert load_checkpoint(tmp_path / "cpu.ckpt")["config"]["device"] == "cpu"


def test_training_progress_fits_80_columns():
    import io
    import re

    from rich.console import Console

    from invgray_cli.cli.train import brief_terms, progress_bar
    from invgray_cli.train.loop import StepReport

    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True)
    bar = progress_bar(console)
    report = StepReport(12345, 99999, {"mse": 1.234e-4, "struct": 0.98765}, 1234.5, 1e-4, 1)
    task = bar.add_task("train", total=99999, terms=brief_terms(report))
    bar.update(task, completed=12345)
    console.print(bar.get_renderable())
    lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", buffer.getvalue()).splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 80 and "struct 0.988" in lines[0]
