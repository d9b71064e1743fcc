"""The sync pattern: its properties, finding it in every frame, taking it out, and decode using it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import run
from invgray_cli.codec import sync_pattern
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.decode import restore
from invgray_cli.codec.frames import Frame, orient
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.models.zoo import ModelInfo
from invgray_cli.codec.sync_pattern import FOUND, PATTERN, PERIOD, add_sync_pattern, find_sync_pattern, remove_sync_pattern
from invgray_cli.train.frame_judge import transform, true_frame
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array
from cli_helpers import restore_array, decode_batch


def smooth_rgb(height: int, width: int) -> np.ndarray:
    return np.stack([smooth_gray(height, width, seed) for seed in (5, 6, 7)], axis=2)


def smooth_gray(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A gray with broad shapes and fine noise, kept inside 10..245 so the pattern never clips."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(40, 215, (1, 1, height // 16 + 2, width // 16 + 2)))
    broad = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    return np.clip(broad.numpy() + rng.normal(0, 3, (height, width)), 10, 245).round().astype(np.uint8)


def test_the_pattern_has_no_component_on_the_4px_lattice():
    for y in range(4):
        for x in range(4):
            assert PATTERN[y::4, x::4].sum() == 0  # eight +1 and eight -1 in every phase mod 4
    assert set(np.unique(PATTERN)) == {-1, 1}


def test_every_other_frame_of_the_pattern_matches_it_at_most_022():
    energy = float((PATTERN.astype(float) ** 2).sum())
    spectrum = np.conj(np.fft.fft2(PATTERN))
    worst = 0.0
    for orientation in range(8):
        turned = orient(torch.from_numpy(PATTERN), orientation).numpy().astype(float)
        matches = np.real(np.fft.ifft2(np.fft.fft2(turned) * spectrum))
        if orientation == 0:
            assert matches[0, 0] == pytest.approx(energy)
            matches[0, 0] = 0.0
        worst = max(worst, float(np.abs(matches).max()))
    assert worst / energy <= 0.22


@pytest.mark.parametrize("orientation", range(8))
def test_the_pattern_is_found_in_every_frame_and_taken_out_exactly(orientation):
    gray = smooth_gray(150, 173)  # odd sides: a mirror moves the phase
    marked = add_sync_pattern(gray)
    for cut_y in range(PERIOD):
        for cut_x in range(0, PERIOD, 3):
            moved = np.ascontiguousarray(transform(torch.from_numpy(marked), orientation, cut_y, cut_x).numpy())
            reading = find_sync_pattern(moved)
            assert reading.found and reading.frame == true_frame(*gray.shape, orientation, cut_y, cut_x, 4, ends=True)
            expected = np.ascontiguousarray(transform(torch.from_numpy(gray), orientation, cut_y, cut_x).numpy())
            assert np.array_equal(remove_sync_pattern(moved, reading), expected)


@pytest.mark.parametrize("orientation", [0, 3, 5, 6])
@pytest.mark.parametrize("cuts", [(0, 0, 0, 0), (4, 0, 0, 0), (0, 8, 1, 0), (0, 0, 0, 2), (5, 1, 13, 3),
                                  (sync_pattern.MARK_BAND - 1, 0, sync_pattern.MARK_BAND, 0), (0, sync_pattern.MARK_BAND + 7, 0, 40)])
def test_edge_marks_tell_every_cut_edge_in_every_orientation(orientation, cuts):
    gray = smooth_gray(150, 173)
    marked = add_sync_pattern(gray)
    top, left, bottom, right = cuts
    kept = (slice(top, 150 - bottom), slice(left, 173 - right))
    moved = np.ascontiguousarray(orient(torch.from_numpy(marked[kept]), orientation).numpy())
    reading = find_sync_pattern(moved)
    assert reading.frame.cut_edges == tuple(lines > 0 for lines in cuts)
    assert (reading.frame.offset_y, reading.frame.offset_x) == (top % 4, left % 4)
    assert reading.cuts == tuple(min(lines, sync_pattern.MARK_BAND) for lines in cuts)
    expected = np.ascontiguousarray(orient(torch.from_numpy(gray[kept]), orientation).numpy())
    assert np.array_equal(remove_sync_pattern(moved, reading), expected)
    assert ("cropped at the" in reading.frame.describe()) == any(cuts)


def test_a_textured_line_does_not_fake_a_cut():
    gray = smooth_gray(150, 173).astype(np.int16)
    rng = np.random.default_rng(9)
    for row in (0, sync_pattern.MARK_BAND - 1, 150 - sync_pattern.MARK_BAND, 150 - 1):  # where the codes end, and the edges' own lines
        gray[row] = rng.integers(0, 256, 173)
    reading = find_sync_pattern(add_sync_pattern(gray.astype(np.uint8)))
    assert reading.found and not reading.frame.is_cut and reading.cuts == (0, 0, 0, 0)


def test_strong_carriers_on_flat_colour_do_not_fake_a_cut():
    rng = np.random.default_rng(11)
    y, x = np.mgrid[:150, :173]
    carrier = rng.choice([-8, 8], (4, 4))[y % 4, x % 4]  # a colour-first model's code on one flat colour
    gray = (128 + carrier).astype(np.uint8)
    reading = find_sync_pattern(add_sync_pattern(gray))
    assert reading.found and reading.cuts == (0, 0, 0, 0)
    cut = find_sync_pattern(np.ascontiguousarray(add_sync_pattern(gray)[2:, :-5]))
    assert cut.cuts == (2, 0, 0, 5)


def test_grays_without_edge_marks():
    gray = smooth_gray(150, 173)
    small = smooth_gray(sync_pattern.MARKED_SIDE - 1, 173)  # too short a side to be marked at its ends
    reading = find_sync_pattern(add_sync_pattern(small))
    assert reading.found and not reading.frame.is_cut
    assert reading.cuts == (sync_pattern.MARK_BAND, 0, sync_pattern.MARK_BAND, 0)  # its left and right are marked
    assert np.array_equal(remove_sync_pattern(add_sync_pattern(small), reading), small)
    format2 = np.clip(gray.astype(np.int16) + sync_pattern.pattern_field(150, 173), 0, 255).astype(np.uint8)
    reading = find_sync_pattern(format2, edge_marks=False)  # its chunk says it has none: nothing reads as cut
    assert reading.found and not reading.frame.is_cut and np.array_equal(remove_sync_pattern(format2, reading), gray)
    unsaid = find_sync_pattern(format2)  # without the chunk's word: no edge shows a mark, so none reads as cut
    assert not unsaid.frame.is_cut and unsaid.read == (False,) * 4
    assert np.array_equal(remove_sync_pattern(format2, unsaid), gray)


@pytest.mark.parametrize("shape", [(150, 40), (40, 150), (100, 47), (100, 100), (96, 36)])
def test_narrow_and_small_grays_are_found_and_read(shape):
    gray = smooth_gray(*shape)
    reading = find_sync_pattern(add_sync_pattern(gray))
    assert reading.found and not reading.frame.is_cut
    assert np.array_equal(remove_sync_pattern(add_sync_pattern(gray), reading), gray)
    format2 = np.clip(gray.astype(np.int16) + sync_pattern.pattern_field(*shape), 0, 255).astype(np.uint8)
    assert find_sync_pattern(format2, edge_marks=False).found  # the window keeps its whole extent without marks
    cut = np.ascontiguousarray(add_sync_pattern(gray)[:-3])  # 3 lines off the bottom
    assert find_sync_pattern(cut).frame.cut_edges[2] == (cut.shape[0] >= sync_pattern.MARKED_SIDE)  # read on a long enough side


def test_only_format_3_chunks_and_grays_without_a_chunk_have_edge_marks():
    from invgray_cli.io.chunk import ChunkInfo, has_edge_marks

    assert has_edge_marks(None) and has_edge_marks(ChunkInfo(3, "m", "00", "0.3.0"))
    assert not has_edge_marks(ChunkInfo(2, "m", "00", "0.2.1")) and not has_edge_marks(ChunkInfo(1, "m", "00", "0.1"))


def test_clipped_pixels_are_kept():
    gray = np.full((64, 64), 255, np.uint8)
    gray[:, :32] = 0
    marked = add_sync_pattern(gray)
    assert marked.max() == 255 and marked.min() == 0 and len(np.unique(marked)) == 4
    assert np.array_equal(remove_sync_pattern(marked, sync_pattern.SyncPatternReading(Frame(), (0, 0), 99.0)), gray)


def test_the_pattern_is_added_and_taken_out_on_the_gray_device(device):
    """A tensor stays on its device and comes out as the array would (integers: exact everywhere)."""
    gray = smooth_gray(70, 90)
    gray[:6], gray[-6:] = 255, 0  # clipped pixels kept
    marked = add_sync_pattern(torch.from_numpy(gray).to(device))
    assert marked.device.type == device and np.array_equal(marked.cpu().numpy(), add_sync_pattern(gray))
    reading = sync_pattern.SyncPatternReading(Frame(5), (3, 7), 20.0, (2, 0, 24, 1))  # turned, mirrored, cut
    taken = remove_sync_pattern(torch.from_numpy(gray).to(device), reading)
    assert taken.device.type == device and np.array_equal(taken.cpu().numpy(), remove_sync_pattern(gray, reading))


@pytest.mark.parametrize("kind", ["noise", "smooth", "flat", "checker4", "stripes16", "tiny"])
def test_a_gray_without_the_pattern_has_none(kind):
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:200, :240]
    gray = {
        "noise": rng.integers(0, 256, (200, 240)),
        "smooth": smooth_gray(200, 240, seed=4),
        "flat": np.full((200, 240), 128),
        "checker4": 100 + 60 * (((y // 2) + (x // 2)) % 2),
        "stripes16": 100 + 60 * ((x % 16) < 5),
        "tiny": rng.integers(0, 256, (20, 300)),
    }[kind].astype(np.uint8)
    reading = find_sync_pattern(gray)
    assert not reading.found and reading.confidence < FOUND / 2
    # found once added, except in a gray too small to search, or one whose own detail hides it:
    # full-range noise (74 levels rms), or 60-level stripes repeating every 16 px
    assert find_sync_pattern(add_sync_pattern(gray)).found == (kind not in ("tiny", "noise", "stripes16"))


@pytest.fixture(scope="module")
def tiny_codec() -> Codec:
    torch.manual_seed(0)
    net = InvertibleGray(NetConfig(scale=2, width=8, encoder_blocks=1, decoder_blocks=1))
    return Codec.from_model(net, ModelInfo("tiny.test", "", net.divisibility, net.receptive_field), device="cpu", tile=0)


@pytest.mark.parametrize("orientation", range(1, 8))
def test_a_mirrored_or_turned_gray_decodes_as_the_gray_itself(tiny_codec, orientation):
    rgb = smooth_rgb(96, 131)
    gray = encode_array(tiny_codec, rgb)
    moved = np.ascontiguousarray(orient(torch.from_numpy(gray), orientation).numpy())
    expected = orient(torch.from_numpy(decode_array(tiny_codec, gray)).permute(2, 0, 1), orientation)
    assert np.array_equal(decode_array(tiny_codec, moved), expected.permute(1, 2, 0).numpy())
    assert np.array_equal(decode_batch(tiny_codec, [moved, gray])[0], expected.permute(1, 2, 0).numpy())
    restored = restore_array(tiny_codec, moved, has_chunk=True)
    assert restored.coded and "sync pattern" in restored.warning


def test_without_the_pattern_the_codec_is_the_nets_alone(tiny_codec):
    rgb = smooth_rgb(64, 80)
    bare = tiny_codec.with_sync_pattern(False)
    gray = encode_array(bare, rgb)
    assert np.array_equal(encode_array(tiny_codec, rgb), add_sync_pattern(gray))
    assert np.array_equal(decode_array(tiny_codec, encode_array(tiny_codec, rgb)), decode_array(bare, gray))
    assert np.array_equal(decode_batch(tiny_codec, [add_sync_pattern(gray)])[0], decode_array(bare, gray))


@pytest.mark.slow
def test_decode_restores_a_turned_and_cropped_png_from_the_cli(tmp_path):
    from skimage import data

    from invgray_cli import metrics

    rgb = np.ascontiguousarray(data.astronaut()[::2, ::2])
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    assert run("encode", tmp_path / "photo.png", "-o", tmp_path / "gray.png", "--device", "cpu").exit_code == 0
    clean = run("decode", tmp_path / "gray.png", "-o", tmp_path / "clean.png", "--device", "cpu", "-q")
    assert clean.exit_code == 0 and clean.stderr == ""
    with Image.open(tmp_path / "gray.png") as image:
        image.transpose(Image.Transpose.ROTATE_90).crop((1, 2, 256, 256)).save(tmp_path / "moved.png")  # drops the chunk
    moved = run("decode", tmp_path / "moved.png", "-o", tmp_path / "moved.color.png", "--device", "cpu", "-q")
    assert moved.exit_code == 0 and "after encoding" in moved.stderr and "sync pattern" in moved.stderr
    info = run("info", tmp_path / "moved.png", "--json")
    pattern = json.loads(info.stdout)["results"][0]["sync_pattern"]  # 1 and 2 lines cut off two edges of the encoded gray
    assert pattern["found"] and sorted(v for v in pattern["lines_cut"].values() if v) == [1, 2]
    truth = np.asarray(Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90).crop((1, 2, 256, 256)))
    clean_psnr = metrics.psnr(np.asarray(Image.open(tmp_path / "clean.png")), rgb)
    assert metrics.psnr(np.asarray(Image.open(tmp_path / "moved.color.png")), truth) > clean_psnr - 1.5
