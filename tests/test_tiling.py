"""Tiled inference equals whole-image inference; padding helpers."""
import pytest
import torch
from torch.nn import functional as F

from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.codec.tiling import compute_padding, crop_padded, round_up, run_tiled, tile_spans


@pytest.mark.parametrize("height,width,div", [(1, 1, 2), (17, 31, 2), (1000, 3, 4), (8, 8, 8), (5, 9, 1)])
def test_compute_padding_round_trip(height, width, div):
    x = torch.rand(1, 3, height, width)
    pad, unpad = compute_padding(height, width, div)
    padded = F.pad(x, pad, mode="replicate")
    assert padded.shape[-2] % div == 0 and padded.shape[-1] % div == 0
    assert padded.shape[-2] - height < div and padded.shape[-1] - width < div
    assert torch.equal(F.pad(padded, unpad), x)


def test_crop_padded_matches_whole_image_reflection(device):
    x = torch.arange(6 * 7, dtype=torch.float32, device=device).view(1, 1, 6, 7)
    padded = F.pad(x, (0, 3, 0, 4), mode="reflect")
    for y0, y1, x0, x1 in [(0, 10, 0, 10), (2, 9, 4, 10), (0, 6, 0, 7), (4, 10, 6, 8), (1, 3, 2, 5)]:
        assert torch.equal(crop_padded(x, y0, y1, x0, x1), padded[..., y0:y1, x0:x1])  # on the image's device


def test_crop_padded_falls_back_to_the_edge_on_tiny_images(device):
    x = torch.tensor([[[[5.0]]]], device=device)
    assert torch.equal(crop_padded(x, 0, 4, 0, 4), torch.full((1, 1, 4, 4), 5.0, device=device))


def test_tile_spans_cover_and_align():
    spans = tile_spans(100, 32, 8)
    assert [s[2:] for s in spans] == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert spans[0][:2] == (0, 40) and spans[1][:2] == (24, 72) and spans[-1][:2] == (88, 100)


def _tiled(fn, image, *, div, halo, tile, out_channels, device="cpu", **kw):
    return run_tiled(fn, image, divisibility=div, halo=halo, tile=tile, device=device, dtype=torch.float32,
                     out_channels=out_channels, **kw)


@pytest.fixture(params=[2, 4], ids=["scale2", "scale4"])
def tiny_model_any_scale(request, tiny_model):
    """The tiny net at the shipped architecture's unshuffle factor (4) and at 2."""
    if request.param == tiny_model.config.scale:
        return tiny_model
    torch.manual_seed(1)
    model = InvertibleGray(NetConfig(scale=request.param, width=8, encoder_blocks=1, decoder_blocks=1))
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.1)
    return model.eval()


@pytest.mark.parametrize("height,width", [(1, 1), (17, 31), (1000, 3), (3, 257), (153, 97)])
@pytest.mark.parametrize("tile", [2, 16, 64])
def test_tiled_encode_equals_untiled(tiny_model_any_scale, height, width, tile, device):
    """On each device, within float tolerances: tiles of other shapes may take other convolution
    kernels (on CUDA too, fp32 without TF32)."""
    torch.manual_seed(height * 1000 + width)
    image = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8)
    model = tiny_model_any_scale.to(device)
    fn = lambda t: model.encode(t / 255.0)  # noqa: E731
    kw = dict(div=model.divisibility, halo=model.encoder_receptive_field, out_channels=1, device=device)
    with torch.inference_mode():
        whole = _tiled(fn, image, tile=None, **kw)
        tiled = _tiled(fn, image, tile=tile, **kw)
        # reference: the whole image padded once on the device, run once, cropped
        pad, unpad = compute_padding(height, width, model.divisibility)
        padded_height, padded_width = height + pad[3], width + pad[1]
        reference = F.pad(fn(crop_padded(image.to(device).float(), 0, padded_height, 0, padded_width)), unpad).cpu()
    assert tiled.shape == (1, 1, height, width) and tiled.dtype == torch.float32
    assert (tiled - whole).abs().max() <= 1e-4
    assert (whole - reference).abs().max() <= 1e-5
    # within the float bound above a value next to a rounding boundary may round either way
    # (convolution kernels differ by tile shape on some CPUs): at most one level, on few pixels
    q_tiled, q_whole = torch.round(tiled * 255), torch.round(whole * 255)
    assert (q_tiled - q_whole).abs().max() <= 1
    assert (q_tiled == q_whole).float().mean() >= 0.999


def test_tiled_decode_equals_untiled_with_quantisation(tiny_model):
    gray = torch.randint(0, 256, (1, 1, 45, 71), dtype=torch.uint8)
    model = tiny_model
    fn = lambda t: model.decode(t / 255.0).clamp(0, 1)  # noqa: E731
    quant = lambda t: torch.round(t * 255).clamp(0, 255).to(torch.uint8)  # noqa: E731
    kw = dict(div=2, halo=model.decoder_receptive_field, out_channels=3, postprocess=quant, out_dtype=torch.uint8)
    with torch.inference_mode():
        whole, tiled = _tiled(fn, gray, tile=None, **kw), _tiled(fn, gray, tile=8, **kw)
    assert tiled.dtype == torch.uint8 and tiled.shape == (1, 3, 45, 71)
    assert (tiled == whole).float().mean() >= 0.9999
    assert tiled[0].permute(1, 2, 0).is_contiguous()  # channels-last: HxWxC without a copy


def test_halo_below_receptive_field_shows_seams(tiny_model):
    """The equality above is not vacuous: without a halo, tiles differ from the whole image."""
    image = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    fn = lambda t: tiny_model.encode(t / 255.0)  # noqa: E731
    with torch.inference_mode():
        whole = _tiled(fn, image, div=2, halo=0, tile=None, out_channels=1)
        seams = _tiled(fn, image, div=2, halo=0, tile=16, out_channels=1)
    assert (seams - whole).abs().max() > 1e-3


def test_progress_and_rounding():
    calls = []
    image = torch.zeros(1, 1, 10, 21)
    out = _tiled(lambda t: t + 1, image, div=4, halo=3, tile=9, out_channels=1, on_tile=lambda d, n: calls.append((d, n)))
    assert torch.equal(out, torch.ones(1, 1, 10, 21))
    # padded 12x24, tile rounded down to 8 -> 2x3 tiles
    assert calls == [(i, 6) for i in range(1, 7)]
    assert round_up(3, 4) == 4 and round_up(8, 4) == 8


def test_a_batch_tiles_like_its_images_one_by_one():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 5, padding=2)
    images = torch.rand(3, 2, 37, 29)
    batched = _tiled(conv, images, div=4, halo=2, tile=8, out_channels=3)
    assert batched.shape == (3, 3, 37, 29)
    for i in range(3):
        single = _tiled(conv, images[i : i + 1], div=4, halo=2, tile=8, out_channels=3)
        assert torch.allclose(batched[i], single[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B,C,H,W\]"):
        _tiled(conv, torch.zeros(2, 4, 4), div=1, halo=0, tile=None, out_channels=1)


def test_auto_tile_size_cpu():
    from invgray_cli.codec.tiling import auto_tile_size

    assert auto_tile_size("cpu") % 64 == 0 and auto_tile_size(torch.device("cpu")) >= 256


def test_out_of_memory_halves_the_tile_and_restarts():
    seen = []

    def fn(t):
        seen.append(t.shape[-1])
        if t.shape[-1] > 70:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return t * 2

    image = torch.rand(1, 1, 100, 200)
    progress = []
    out = _tiled(fn, image, div=2, halo=4, tile=256, out_channels=1, on_tile=lambda d, n: progress.append(n))
    assert torch.equal(out, image * 2)
    assert seen[:2] == [200, 104] and max(seen[2:]) <= 70  # tile 256 (whole) -> 100 (+halo) -> 50
    assert progress[-1] == 8  # 2x4 tiles of 50


def test_out_of_memory_gives_up_below_min_tile():
    def fn(t):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        _tiled(fn, torch.rand(1, 1, 64, 64), div=2, halo=4, tile=64, out_channels=1)


def test_other_errors_are_not_retried():
    calls = []

    def fn(t):
        calls.append(1)
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        _tiled(fn, torch.rand(1, 1, 64, 64), div=2, halo=4, tile=64, out_channels=1)
    assert len(calls) == 1
