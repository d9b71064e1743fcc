"""Finding a moved gray's grid (grid.py): the geometry, the choice over the shortlist, and the
shipped judge on a real photo moved every way."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import photo, run, ship_companion
from invgray_cli.codec import frames as grid
from invgray_cli.codec import decode as decode_module
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.decode import restore
from invgray_cli.errors import InvgrayError
from invgray_cli.codec.frames import Frame, all_frames, find_frame, into_frame, out_of_frame
from invgray_cli.models.frame_judge import FrameJudge, FrameJudgeConfig
from invgray_cli.models.kinds import FRAME_JUDGE_NET
from invgray_cli.models.weights import file_sha256, load_weights, save_weights
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.train.frame_judge import transform, true_frame
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.decode import decode_array, locate
from invgray_cli.codec.edges import decode_in_frame
from cli_helpers import restore_array, decode_batch

MOVED_LOSS_DB = 1.0  # astronaut (512²), all 8 moves right: measured losses 0.00-0.62 dB (the cut edges)
MOVES = [(t, cy, cx) for t in range(8) for cy in range(4) for cx in range(4)]


@pytest.mark.parametrize("height,width", [(37, 45), (40, 40), (41, 38)])
def test_the_true_frame_puts_every_moved_pixel_back_on_its_grid(height, width):
    index = torch.arange(height * width).view(height, width)
    frames_of_the_grid = set(all_frames(4))
    for move in MOVES:
        frame = true_frame(height, width, *move, 4)
        framed = into_frame(transform(index, *move), frame)
        rows, columns = np.divmod(framed[frame.offset_y :, frame.offset_x :].numpy(), width)
        y, x = np.mgrid[frame.offset_y : framed.shape[0], frame.offset_x : framed.shape[1]]
        assert ((rows - y) % 4 == 0).all() and ((columns - x) % 4 == 0).all(), (move, frame)
        assert torch.equal(out_of_frame(framed, frame), transform(index, *move))  # and back
        assert frame in frames_of_the_grid and frame.orientation == move[0]


def _edge_codecs(tiny_model, all_cuts: bool = False) -> tuple[Codec, Codec]:
    """The tiny model's codec without and with an edge decoder (the same net, another decoder)."""
    from invgray_cli.models.net import EdgeDecoder

    from invgray_cli.models.zoo import ModelInfo

    torch.manual_seed(7)
    edge = InvertibleGray(tiny_model.config)
    edge.load_state_dict(tiny_model.state_dict())
    for p in edge.decoder.parameters():
        torch.nn.init.normal_(p, std=0.1)
    info = ModelInfo("tiny", "0" * 64, tiny_model.divisibility, tiny_model.receptive_field)
    plain = Codec.from_model(tiny_model, info, device="cpu").with_sync_pattern(False)
    return plain, replace(plain, edge_decoder=EdgeDecoder(edge.eval(), all_cuts))


def test_the_edge_decoder_redecodes_only_the_band_beside_a_cut_top_or_left_edge(tiny_model):
    from invgray_cli.codec.edges import EDGE_BAND

    plain, with_edge = _edge_codecs(tiny_model)
    gray = np.random.default_rng(0).integers(0, 256, (70, 90), dtype=np.uint8)
    frame = Frame(0, 1, 1)  # a crop by an odd number of lines at the top and the left (2-px grid)
    ours, before = decode_in_frame(with_edge, gray, frame), decode_in_frame(plain, gray, frame)
    edge_alone = decode_in_frame(replace_net(plain, with_edge.edge_decoder.net), gray, frame)
    band, block = EDGE_BAND, tiny_model.divisibility
    assert np.array_equal(ours[band:, band:], before[band:, band:])  # beyond the band: the model's decoder
    assert not np.array_equal(ours[:band], before[:band]) and not np.array_equal(ours[:, :band], before[:, :band])
    assert np.array_equal(ours[block:band, band:], edge_alone[block:band, band:])  # in it: the edge decoder's colour
    assert np.array_equal(ours[band:, block:band], edge_alone[band:, block:band])
    top_only = decode_in_frame(with_edge, gray, Frame(0, 1, 0))
    assert np.array_equal(top_only[:, :band][band:], decode_in_frame(plain, gray, Frame(0, 1, 0))[band:, :band])


def replace_net(codec: Codec, net: InvertibleGray) -> Codec:
    return replace(codec, model=net)


@pytest.mark.parametrize("frame", [Frame(0, 0, 0), Frame(2, 0, 0), Frame(5, 0, 0)])
def test_grays_that_lost_no_lines_at_the_top_or_left_never_meet_the_edge_decoder(tiny_model, frame):
    plain, with_edge = _edge_codecs(tiny_model)
    gray = np.random.default_rng(1).integers(0, 256, (40, 52), dtype=np.uint8)
    assert np.array_equal(decode_in_frame(with_edge, gray, frame), decode_in_frame(plain, gray, frame))
    off = with_edge.with_edge_decoding(False)
    assert np.array_equal(decode_in_frame(off, gray, Frame(0, 1, 1)), decode_in_frame(plain, gray, Frame(0, 1, 1)))


@pytest.mark.parametrize("frame", [Frame(0, 0, 0, (False, False, True, True)), Frame(0, 1, 1, (True, True, True, False)),
                                   Frame(3, 0, 1, (False, True, False, True)), Frame(0, 0, 0, (True, False, False, False))])
def test_an_edge_decoder_of_every_cut_redecodes_the_bands_of_the_cut_edges(tiny_model, frame):
    from invgray_cli.codec.edges import EDGE_BAND

    plain, with_edge = _edge_codecs(tiny_model, all_cuts=True)
    gray = np.random.default_rng(2).integers(0, 256, (71, 90), dtype=np.uint8)
    ours, before = decode_in_frame(with_edge, gray, frame), decode_in_frame(plain, gray, frame)
    edge_alone = decode_in_frame(replace_net(plain, with_edge.edge_decoder.net), gray, frame)
    framed_ours, framed_before, framed_edge = (into_frame(torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1),
                                                          frame) for c in (ours, before, edge_alone))
    band, block = EDGE_BAND, tiny_model.divisibility
    inner = (slice(None), slice(band + block, -band), slice(band + block, -band))
    assert torch.equal(framed_ours[inner], framed_before[inner])  # the model's decoder inside
    top, left, bottom, right = frame.cut_edges
    for cut, side in ((top, (slice(None), slice(block, band), slice(band + block, -band))),  # past the mended block
                      (left, (slice(None), slice(band + block, -band), slice(block, band))),
                      (bottom, (slice(None), slice(-band, None), slice(band + block, -band))),
                      (right, (slice(None), slice(band + block, -band), slice(-band, None)))):
        if cut:  # the edge decoder's colour
            assert torch.equal(framed_ours[side], framed_edge[side]) and not torch.equal(framed_ours[side], framed_before[side])
        else:  # an edge the encoder made: the model's decoder
            assert torch.equal(framed_ours[side], framed_before[side])
    top_left_only = replace(with_edge, edge_decoder=replace(with_edge.edge_decoder, all_cuts=False))
    bottom = (slice(None), slice(-band, None), slice(band + block, -band))
    framed_top_left = into_frame(torch.from_numpy(decode_in_frame(top_left_only, gray, frame)).permute(2, 0, 1), frame)
    assert torch.equal(framed_top_left[bottom], framed_before[bottom])  # it serves only tops and lefts off the grid
    whole_block_top = Frame(0, 0, 0, (True, False, False, False))  # a top cut by whole blocks: on the grid
    assert np.array_equal(decode_in_frame(top_left_only, gray, whole_block_top), decode_in_frame(plain, gray, whole_block_top))
    assert not np.array_equal(decode_in_frame(with_edge, gray, whole_block_top), decode_in_frame(plain, gray, whole_block_top))


def test_a_clean_gray_does_not_load_an_edge_decoder_and_batches_agree(monkeypatch):
    from invgray_cli.codec import nets as codec_module

    def refuse(*args):
        raise AssertionError("the edge decoder was loaded for a clean gray")

    torch.manual_seed(0)
    quiet = InvertibleGray(NetConfig(scale=2, width=8, encoder_blocks=1, decoder_blocks=1))  # a gray near the luma
    plain, _ = _edge_codecs(quiet)
    monkeypatch.setattr(codec_module, "edge_decoder_on", refuse)
    with_pattern = plain.with_sync_pattern(True)
    from test_sync_pattern import smooth_rgb

    rgb = smooth_rgb(120, 132)  # a gray whose pattern and edge marks are found
    gray = encode_array(with_pattern, rgb)
    assert locate(with_pattern, gray).found and not locate(with_pattern, gray).frame.is_cut
    assert np.array_equal(decode_array(with_pattern, gray), decode_array(plain, encode_array(plain, rgb)))
    _, all_sides = _edge_codecs(quiet, all_cuts=True)
    all_sides = replace(all_sides, sync_pattern=True)
    cut = np.ascontiguousarray(gray[:-2])
    assert locate(all_sides, cut).frame == Frame(0, 0, 0, (False, False, True, False))
    batch = decode_batch(all_sides, [gray, cut])
    assert np.array_equal(batch[0], decode_array(with_pattern, gray)) and np.array_equal(batch[1], decode_array(all_sides, cut))
    assert not np.array_equal(decode_array(all_sides, cut), decode_array(with_pattern.with_edge_decoding(False), cut))


def test_a_shipped_edge_decoder_is_found_for_its_model(registered, monkeypatch):
    from invgray_cli.codec import nets as codec_module
    from invgray_cli.models import zoo

    ship_companion(monkeypatch, registered, zoo.EDGE_DECODER, all_cuts=True)
    zoo.shipped_edge_decoder.cache_clear()
    codec_module.edge_decoder_on.cache_clear()
    try:
        codec = Codec.load(device="cpu")
        edge = codec.edge_decoder_for_cuts()
        assert edge is not None and edge.net is not codec.model and edge.all_cuts
        assert codec.with_edge_decoding(False).edge_decoder_for_cuts() is None
        (registered.parent / registered.name).rename(registered.parent / "gone.safetensors")
        zoo.shipped_edge_decoder.cache_clear()
        codec_module.edge_decoder_on.cache_clear()
        with pytest.raises(InvgrayError, match="shipped edge decoder is missing"):
            codec.edge_decoder_for_cuts()
    finally:
        zoo.shipped_edge_decoder.cache_clear()
        codec_module.edge_decoder_on.cache_clear()


def test_padding_repeats_the_grid_phase():
    line = torch.arange(10)
    padded = into_frame(line[None], Frame(0, 0, 3))[0]
    assert padded.tolist()[:4] == [1, 2, 3, 0]  # phases 0, 1, 2 copied from the next block, then the real line
    assert torch.equal(padded[3:], line)


class FixedJudge(FrameJudge):
    """A judge giving fixed logits to the candidates, in shortlist order."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__(FrameJudgeConfig(width=2))
        self.logits = torch.tensor(logits)

    def forward(self, views: torch.Tensor, log_ratios: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(views)]


@pytest.fixture
def tiny_net() -> InvertibleGray:
    torch.manual_seed(0)
    net = InvertibleGray(NetConfig(scale=4, width=8, encoder_blocks=1, decoder_blocks=1))
    return net.eval()


def test_the_choice_over_the_shortlist(tiny_net, monkeypatch):
    gray = np.random.default_rng(0).integers(0, 256, (150, 160), dtype=np.uint8)
    moved = Frame(1, 0, 2)
    scores = {f: 5.0 for f in all_frames(4)}
    monkeypatch.setattr(grid, "frame_scores", lambda model, image: scores)
    scores.update({moved: 0.9, Frame(): 1.0})  # both on the shortlist, the moved frame first
    assert find_frame(tiny_net, FixedJudge([3.0, 0.0]), gray).frame == Frame()  # on the shortlist: kept as it is
    monkeypatch.setattr(grid, "IDENTITY_SHARE", 0.2)
    assert find_frame(tiny_net, FixedJudge([0.0, 0.0]), gray).frame == Frame()  # even odds: kept
    strong = find_frame(tiny_net, FixedJudge([3.0, 0.0]), gray)  # identity at 5 %: below the share
    assert strong.frame == moved and strong.candidates == 2 and strong.probability == pytest.approx(0.953, abs=1e-3)
    scores.update({Frame(): 5.0, Frame(2, 1, 1): 1.0})  # off the shortlist: the judge picks among the rest
    assert find_frame(tiny_net, FixedJudge([-1.0, 2.0]), gray).frame == Frame(2, 1, 1)
    scores[Frame(2, 1, 1)] = 5.0
    alone = find_frame(tiny_net, FixedJudge([-9.0]), gray)
    assert alone == grid.FrameChoice(moved, 1, 1.0)  # no choice to make
    assert find_frame(tiny_net, None, gray).frame == Frame()  # no judge: as it comes
    assert find_frame(tiny_net, FixedJudge([3.0, 0.0]), gray[:130]).frame == Frame()  # too small to probe


def test_the_probe_regions_add_up(tiny_net, monkeypatch):
    gray = np.random.default_rng(2).integers(0, 256, (420, 420), dtype=np.uint8)
    a, b = Frame(1, 0, 2), Frame(2, 1, 1)
    per_region = [{a: 1.0, b: 1.2}, {a: 1.0, b: 1.2}, {a: 2.0, b: 1.0}]
    probed, seen = [], []

    def scores(model, image):
        probed.append(tuple(image.shape[-2:]))
        return {f: 50.0 for f in all_frames(4)} | per_region[len(probed) - 1]

    class RecordingJudge(FixedJudge):
        def forward(self, views: torch.Tensor, log_ratios: torch.Tensor) -> torch.Tensor:
            seen.append(log_ratios.exp().tolist())
            return super().forward(views, log_ratios)

    monkeypatch.setattr(grid, "frame_scores", scores)
    choice = find_frame(tiny_net, RecordingJudge([1.0, 0.0]), gray)
    assert probed == [(192, 192)] * 3
    # geometric means: b 1.13, a 1.26, so b leads; each region's ratios are over its own best
    assert np.allclose(seen, [[1.2, 1.0], [1.2, 1.0], [1.0, 2.0]])
    assert choice.frame == b and choice.candidates == 2 and choice.probability == pytest.approx(0.953, abs=1e-3)


def test_frame_judge_file_round_trip(tmp_path):
    torch.manual_seed(0)
    judge = FrameJudge(FrameJudgeConfig(width=4))
    save_weights(judge, tmp_path / "j.safetensors", model_sha256="cd" * 32)
    loaded = load_weights(tmp_path / "j.safetensors", FRAME_JUDGE_NET)
    assert loaded.metadata["model_sha256"] == "cd" * 32 and loaded.net.config == judge.config
    views, ratios = torch.rand(3, 4, 32, 32), torch.tensor([0.0, 0.1, 0.3])
    assert torch.equal(loaded.net(views, ratios), judge.eval()(views, ratios))


def test_train_frames_runs_and_exports(registered, tmp_path):
    folder = tmp_path / "photos"
    for seed in range(2):
        photo(folder / f"{seed}.png", 260, 256, seed=seed)
    result = run("train-frames", folder, "--val", folder, "--out", tmp_path / "f.ckpt", "--steps", "3",
                 "--batch", "2", "--width", "4", "--val-every", "3", "--cache", tmp_path / "cases.npz", "--device", "cpu",
                 "--export", tmp_path / "f.safetensors")
    assert result.exit_code == 0, result.stderr
    assert "right_moved" in result.stderr and "right_as_encoded" in result.stderr
    loaded = load_weights(tmp_path / "f.safetensors", FRAME_JUDGE_NET)
    assert loaded.metadata["model_sha256"] == file_sha256(registered) and loaded.net.config.width == 4
    again = run("train-frames", folder, "--out", tmp_path / "g.ckpt", "--steps", "1", "--batch", "2", "--width", "4",
                "--cache", tmp_path / "cases.npz")
    assert again.exit_code == 0 and "2 training cases from" in again.stderr  # the cache is reused


@pytest.fixture(scope="module")
def astronaut_coded() -> tuple[np.ndarray, np.ndarray, Codec]:
    from skimage import data

    codec = Codec.load(device="cpu", tile=0).with_sync_pattern(False)  # the search serves grays without the sync pattern
    rgb = np.ascontiguousarray(data.astronaut())
    return rgb, encode_array(codec, rgb), codec


KINDS_OF_MOVE = [(0, 1, 0), (0, 0, 3), (0, 2, 2), (2, 0, 0), (1, 0, 0), (6, 0, 0), (3, 0, 0), (5, 1, 1)]


@pytest.mark.slow
@pytest.mark.thorough  # a search of the shipped model each (~15 s): the fast twin below runs by default
@pytest.mark.parametrize("move", KINDS_OF_MOVE)
def test_a_moved_gray_decodes_on_its_grid(astronaut_coded, move):
    from invgray_cli import metrics

    rgb, gray, codec = astronaut_coded
    moved_gray = np.ascontiguousarray(transform(torch.from_numpy(gray), *move).numpy())
    truth = np.ascontiguousarray(transform(torch.from_numpy(rgb).permute(2, 0, 1), *move).permute(1, 2, 0).numpy())
    clean = metrics.psnr(decode_array(codec, gray), rgb)
    restored = restore_array(codec, moved_gray, has_chunk=False, search_frame=True)
    assert restored.coded and ("after encoding" in restored.warning) == (move != (0, 0, 0))
    assert metrics.psnr(restored.rgb, truth) > clean - MOVED_LOSS_DB
    assert metrics.psnr(decode_array(codec, moved_gray), truth) < clean - 10  # as it comes it is lost


@pytest.mark.parametrize("move", KINDS_OF_MOVE)
def test_a_moved_gray_decodes_on_the_frame_found_as_before_the_move(monkeypatch, move):
    """The fast twin of the test above: whatever the move, the gray decodes on the frame the search
    gives as it did before it was moved (but beside the edges the crop cut)."""
    from test_sync_pattern import smooth_rgb

    from invgray_cli.models.zoo import ModelInfo

    torch.manual_seed(0)
    net = InvertibleGray(NetConfig(scale=4, width=8, encoder_blocks=1, decoder_blocks=1))  # the shipped 4-px grid
    for p in net.parameters():  # tails too, so the nets see past their block
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.1)
    info = ModelInfo("tiny4", "0" * 64, net.divisibility, net.receptive_field)
    codec = Codec.from_model(net.eval(), info, device="cpu").with_sync_pattern(False)
    gray = encode_array(codec, smooth_rgb(70, 86))
    frame = true_frame(*gray.shape, *move, codec.model.divisibility)
    searched = []
    monkeypatch.setattr(decode_module, "find_frame",
                        lambda model, judge, moved: searched.append(moved.shape) or grid.FrameChoice(frame, 2, 0.9))
    moved = np.ascontiguousarray(transform(torch.from_numpy(gray), *move).numpy())
    truth = transform(torch.from_numpy(decode_array(codec, gray)).permute(2, 0, 1), *move).permute(1, 2, 0).numpy()
    restored = restore_array(codec, moved, has_chunk=False, search_frame=True)
    assert searched == [moved.shape] and restored.coded
    assert ("after encoding" in (restored.warning or "")) == (not frame.is_identity)
    inner = codec.model.receptive_field + codec.model.divisibility  # beyond the reach of the cut top and left
    assert np.abs(restored.rgb[inner:, inner:].astype(int) - truth[inner:, inner:]).max() <= 1
    if not frame.is_identity:  # as it comes, off its grid, it decodes otherwise
        assert not np.array_equal(decode_array(codec, moved)[inner:, inner:], truth[inner:, inner:])


@pytest.mark.slow
def test_an_unmoved_gray_is_kept_as_it_comes(astronaut_coded, monkeypatch):
    rgb, _, codec = astronaut_coded
    gray = encode_array(codec, np.ascontiguousarray(rgb[:256, 128:384]))  # the face: one probe region, a third of the search
    found, search = [], decode_module.find_frame
    monkeypatch.setattr(decode_module, "find_frame", lambda *args: found.append(search(*args)) or found[-1])
    restored = restore_array(codec, gray, has_chunk=False, search_frame=True)
    assert [choice.frame for choice in found] == [Frame()]  # searched, and the gray kept as it is
    assert restored.warning is None and np.array_equal(restored.rgb, decode_array(codec, gray))


def test_a_reversed_view_is_searched_and_decoded_as_its_copy(tiny_net, weights):
    gray = np.random.default_rng(3).integers(0, 256, (150, 164), dtype=np.uint8)
    view = gray[:, ::-1]  # negative strides: the search and decode_in_frame copy it
    copy = np.ascontiguousarray(view)
    judge = FixedJudge([float(i) for i in range(grid.SHORTLIST_SIZE)])
    assert find_frame(tiny_net, judge, view) == find_frame(tiny_net, judge, copy)
    codec = Codec.load(weights=weights, device="cpu")
    frame = Frame(2, 1, 0)
    assert np.array_equal(decode_in_frame(codec, view, frame), decode_in_frame(codec, copy, frame))


def test_decode_does_not_search_unless_asked(weights, monkeypatch):
    codec = Codec.load(weights=weights, device="cpu")
    searched = []
    monkeypatch.setattr(decode_module, "find_frame",
                        lambda model, judge, gray: searched.append(gray.shape) or grid.FrameChoice(Frame(1, 0, 0), 2, 0.9))
    gray = np.random.default_rng(1).integers(0, 256, (200, 200), dtype=np.uint8)
    as_is = restore_array(codec, gray, has_chunk=False)
    assert not searched and as_is.warning is None and np.array_equal(as_is.rgb, decode_array(codec, gray))
    asked = restore_array(codec, gray, has_chunk=False, search_frame=True)
    assert searched == [(200, 200)] and "mirrored after encoding" in asked.warning


@pytest.mark.slow
def test_decode_find_frame_restores_a_mirrored_png(astronaut_coded, tmp_path):
    from invgray_cli import metrics

    rgb, gray, _ = astronaut_coded
    Image.fromarray(np.ascontiguousarray(gray[:, ::-1])).save(tmp_path / "mirrored.png")  # Pillow drops the chunk
    searched = run("decode", tmp_path / "mirrored.png", "-o", tmp_path / "searched.png", "--find-frame",
                   "--device", "cpu")
    assert searched.exit_code == 0 and "mirrored after encoding" in searched.stderr
    as_is = run("decode", tmp_path / "mirrored.png", "-o", tmp_path / "as_is.png", "--device", "cpu")
    assert as_is.exit_code == 0 and "after encoding" not in as_is.stderr
    truth = np.ascontiguousarray(rgb[:, ::-1])
    restored = [metrics.psnr(np.asarray(Image.open(tmp_path / f"{name}.png")), truth) for name in ("searched", "as_is")]
    assert restored[0] > 35.0 and restored[1] < 25.0


@pytest.mark.parametrize("height,width", [(301, 413), (200, 203)])
def test_the_probe_region_keeps_the_frame_of_the_whole_gray(height, width):
    index = torch.arange(height * width).view(1, height, width)
    detail = torch.zeros(1, height, width)
    detail[..., height - 60 :, 40:90] = torch.rand(1, 60, 50)  # the detail sits off-centre
    for move in [(0, 1, 2), (3, 3, 0), (5, 2, 1), (6, 0, 3)]:
        moved, moved_detail = transform(index, *move), transform(detail, *move)
        stacked = torch.cat([moved_detail, moved.float()])
        region = stacked[(..., *grid.probe_box(stacked, 150, 4))]
        assert region[0].abs().sum() > 0  # it went where the detail is
        frame = true_frame(height, width, *move, 4)
        framed = into_frame(region[1].long(), frame)[frame.offset_y :, frame.offset_x :]
        rows, columns = np.divmod(framed.numpy(), width)
        y, x = np.mgrid[frame.offset_y : frame.offset_y + framed.shape[0], frame.offset_x : frame.offset_x + framed.shape[1]]
        assert ((rows - y) % 4 == 0).all() and ((columns - x) % 4 == 0).all(), move
