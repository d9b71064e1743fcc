"""Codec: chunk, model choice for a gray, arrays, files and the rembg-style API (tiny random model)."""
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import invgray_cli
from invgray_cli import api as api_module
from invgray_cli.codec import nets as nets_module
from invgray_cli.codec.block_code import embed_block_code
from invgray_cli.codec.sync_pattern import add_sync_pattern
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.model_choice import ModelSpec, choose_model, codec_for_gray
from invgray_cli.api import decode, encode, load_model
from invgray_cli.codec.files import decode_file, encode_file
from invgray_cli.io.chunk import FORMAT_VERSION, make_chunk, parse_chunk
from invgray_cli.devices import dtype_for, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.models.weights import save_weights
from invgray_cli.models.zoo import ModelInfo
from invgray_cli.codec.encode import encode_array, encode_float
from invgray_cli.codec.decode import decode_array
from cli_helpers import codec_entry, decode_batch, encode_batch, ship_only
from invgray_cli.codec.encode import encode_photos


@pytest.fixture
def tiny_weights(tmp_path, tiny_model) -> tuple[Path, str]:
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "tiny.safetensors"
    return path, save_weights(tiny_model, path, name="igray.tiny")


@pytest.fixture
def tiny_codec(tiny_weights) -> Codec:
    return Codec.load(weights=tiny_weights[0], device="cpu", tile=16)


@pytest.fixture
def tiny_codec_on(tiny_weights, device) -> Codec:
    """The tiny codec on each device, in fp32 (on CUDA too, where auto would take fp16)."""
    return Codec.load(weights=tiny_weights[0], device=device, tile=16, precision="fp32")


@pytest.fixture
def shipped_tiny(tiny_weights, monkeypatch):
    """Register the tiny weights as the only (default) shipped model."""
    path, sha = tiny_weights
    ship_only(monkeypatch, path.parent, codec_entry(path, "igray.tiny"))
    return path, sha


@pytest.fixture
def no_shipped(monkeypatch):
    ship_only(monkeypatch, None)


def _rgb(height=23, width=37, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png(tmp_path: Path, array: np.ndarray, name: str = "in.png", mode: str | None = None) -> Path:
    path = tmp_path / name
    Image.fromarray(array, mode).save(path)
    return path


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ---- chunk --------------------------------------------------------------------------------------


def test_chunk_round_trip():
    info = ModelInfo("igray.s2w48", "ab" * 32, 2, 24)
    text = make_chunk(info.name, info.sha256)
    assert list(text) == ["invgray"]
    payload = json.loads(text["invgray"])
    assert payload == {"format": 3, "model": "igray.s2w48", "sha256": "ab" * 8, "version": invgray_cli.__version__}
    chunk = parse_chunk(text)
    assert chunk.format == FORMAT_VERSION and chunk.model == "igray.s2w48" and chunk.sha256 == "ab" * 8
    assert parse_chunk({}) is None and parse_chunk({"Software": "GIMP"}) is None


def test_unknown_format_version_refused():
    with pytest.raises(InvgrayError, match=r"invgray format 4.*reads formats 1, 2, 3 only.*upgrade invgray"):
        parse_chunk({"invgray": json.dumps({"format": 4, "model": "x.y", "sha256": "00"})})
    assert parse_chunk({"invgray": json.dumps({"format": 1, "model": "x.y", "sha256": "00"})}).format == 1  # before the pattern


@pytest.mark.parametrize("raw", ["not json", "[]", '{"model": "x"}', '{"format": 1}'])
def test_damaged_chunk_refused(raw):
    with pytest.raises(InvgrayError, match="damaged"):
        parse_chunk({"invgray": raw})


# ---- devices ------------------------------------------------------------------------------------


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("CPU").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert dtype_for(torch.device("cpu")) == torch.float32
    with pytest.raises(InvgrayError, match="unknown device 'tpu7'"):
        resolve_device("tpu7")
    with pytest.raises(InvgrayError, match="unsupported device 'meta'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(InvgrayError, match="no CUDA GPU.*--device cpu"):
            resolve_device("cuda:0")


# ---- Codec on arrays ----------------------------------------------------------------------------


def test_codec_loads_user_weights(tiny_codec, tiny_weights):
    assert tiny_codec.info.name == "igray.tiny" and tiny_codec.info.sha256 == tiny_weights[1]
    assert tiny_codec.device.type == "cpu" and tiny_codec.dtype == torch.float32 and tiny_codec.tile == 16
    assert parse_chunk(tiny_codec.chunk_text()).sha256 == tiny_weights[1][:16]


def test_codec_tile_options(tiny_weights):
    assert Codec.load(weights=tiny_weights[0], device="cpu").tile >= 256  # automatic
    assert Codec.load(weights=tiny_weights[0], device="cpu", tile=0).tile is None  # whole image
    with pytest.raises(InvgrayError, match="tile size must be positive"):
        Codec.load(weights=tiny_weights[0], device="cpu", tile=-4)


def test_codec_without_any_weights(no_shipped):
    with pytest.raises(InvgrayError, match="no shipped weights; pass --weights PATH"):
        Codec.load()


@pytest.mark.parametrize("shape", [(1, 1), (17, 31), (1000, 3), (1, 500), (45, 46)])
def test_encode_decode_shapes_and_tiling(tiny_codec_on, shape):
    """Tiled and whole runs on each device agree within float tolerances (1e-4 before rounding;
    a value next to a rounding boundary may round either way)."""
    rgb = _rgb(*shape, seed=sum(shape))
    gray = encode_array(tiny_codec_on, rgb)
    assert gray.shape == shape and gray.dtype == np.uint8
    whole = tiny_codec_on.with_tile(None)
    assert np.abs(encode_float(tiny_codec_on, rgb) - encode_float(whole, rgb)).max() <= 1e-4
    assert (gray == encode_array(whole, rgb)).mean() >= 0.9999
    colour = decode_array(tiny_codec_on, gray)
    assert colour.shape == (*shape, 3) and colour.dtype == np.uint8 and colour.flags.c_contiguous
    assert (colour == decode_array(whole, gray)).mean() >= 0.9999


def test_encode_float_quantises_to_encode_array(tiny_codec_on):
    rgb = _rgb()
    values = encode_float(tiny_codec_on, rgb)
    assert values.dtype == np.float32 and 0.0 <= values.min() and values.max() <= 1.0
    quantised = np.clip(np.round(values * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(quantised, encode_array(tiny_codec_on.with_sync_pattern(False), rgb))
    assert np.array_equal(add_sync_pattern(quantised), encode_array(tiny_codec_on, rgb))  # the stored gray: the sync pattern on top
    assert np.array_equal(encode_photos(tiny_codec_on, [rgb], block_code=True)[0].gray,
                          embed_block_code(add_sync_pattern(quantised), rgb))  # and the block code on that


def test_progress_callback(tiny_codec):
    calls = []
    encode_array(tiny_codec, _rgb(40, 20), on_tile=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_encode_array_rejects_wrong_arrays(tiny_codec, bad):
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        encode_array(tiny_codec, bad)


# ---- choosing a model for a gray ----------------------------------------------------------------


def test_choose_model_from_chunk(shipped_tiny, tiny_codec):
    assert choose_model(tiny_codec.chunk_text()) == (ModelSpec(name="igray.tiny"), None)


def test_choose_model_without_chunk_warns(shipped_tiny):
    spec, warning = choose_model({})
    assert spec == ModelSpec(name="igray.tiny") and "no invgray chunk" in warning and "igray.tiny" in warning
    assert choose_model(None) == (ModelSpec(name="igray.tiny"), None)  # a bare array cannot carry one


def test_choose_model_unknown_or_mismatched(shipped_tiny):
    chunk = {"invgray": json.dumps({"format": 1, "model": "igray.future", "sha256": "1234"})}
    with pytest.raises(InvgrayError, match=r"'igray\.future', which this invgray does not ship; pass --weights"):
        choose_model(chunk)
    chunk = {"invgray": json.dumps({"format": 1, "model": "igray.tiny", "sha256": "0000"})}
    with pytest.raises(InvgrayError, match="weights 0000, but the shipped ones are"):
        choose_model(chunk)


def test_choose_model_nothing_shipped(no_shipped):
    with pytest.raises(InvgrayError, match="no shipped weights; pass --weights PATH"):
        choose_model({})


def test_explicit_weights_override_chunk_with_warning(tiny_weights, tiny_model, tmp_path):
    other = tmp_path / "other.safetensors"
    torch.nn.init.normal_(tiny_model.decoder[0].weight)
    save_weights(tiny_model, other, name="igray.other")
    text = Codec.load(weights=tiny_weights[0], device="cpu").chunk_text()
    codec, warning = codec_for_gray(text, weights=other, device="cpu")
    assert codec.info.name == "igray.other" and "encoded with 'igray.tiny'" in warning
    codec, warning = codec_for_gray(text, weights=tiny_weights[0], device="cpu")
    assert warning is None


# ---- files --------------------------------------------------------------------------------------


def test_file_round_trip_with_alpha(tmp_path, tiny_codec, shipped_tiny):
    rgba = np.dstack([_rgb(), np.full((23, 37), 128, np.uint8)])
    source = _png(tmp_path, rgba, mode="RGBA")
    result = encode_file(source, tmp_path / "in.gray.png", tiny_codec)
    assert (result.width, result.height, result.alpha, result.model) == (37, 23, True, "igray.tiny")
    gray = Image.open(tmp_path / "in.gray.png")
    assert gray.mode == "LA" and gray.size == (37, 23) and parse_chunk(gray.text).model == "igray.tiny"
    result = decode_file(tmp_path / "in.gray.png", tmp_path / "out.png", device="cpu")  # model from the chunk
    assert result.warning is None and result.model == "igray.tiny"
    colour = Image.open(tmp_path / "out.png")
    assert colour.mode == "RGBA" and colour.size == (37, 23)
    assert np.array_equal(np.asarray(colour)[:, :, 3], rgba[:, :, 3])
    assert np.array_equal(np.asarray(colour)[:, :, :3], decode_array(tiny_codec, np.asarray(gray)[:, :, 0]))
    assert _files(tmp_path) == {"in.png", "in.gray.png", "out.png", "weights"}


def test_decode_to_jpeg_by_extension(tmp_path, tiny_codec):
    encode_file(_png(tmp_path, _rgb()), tmp_path / "g.png", tiny_codec)
    decode_file(tmp_path / "g.png", tmp_path / "c.jpg", codec=tiny_codec)
    assert Image.open(tmp_path / "c.jpg").format == "JPEG"


def test_decode_resaved_gray_warns(tmp_path, tiny_codec):
    encode_file(_png(tmp_path, _rgb()), tmp_path / "g.png", tiny_codec)
    Image.open(tmp_path / "g.png").save(tmp_path / "resaved.png")  # another tool drops the chunk
    result = decode_file(tmp_path / "resaved.png", tmp_path / "c.png", codec=tiny_codec)
    assert "no invgray chunk" in result.warning


def test_decode_rgb_photo_refused(tmp_path, tiny_codec):
    photo = _png(tmp_path, _rgb(), "photo.png")
    with pytest.raises(InvgrayError, match="is a colour image, not an invgray gray"):
        decode_file(photo, tmp_path / "c.png", codec=tiny_codec)
    assert _files(tmp_path) == {"photo.png", "weights"}


def test_encode_into_missing_folder_leaves_nothing(tmp_path, tiny_codec):
    source = _png(tmp_path, _rgb())
    with pytest.raises(InvgrayError, match="does not exist"):
        encode_file(source, tmp_path / "nope" / "g.png", tiny_codec)
    assert _files(tmp_path) == {"in.png", "weights"}


def test_encode_bad_input_leaves_nothing(tmp_path, tiny_codec):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvgrayError, match="empty"):
        encode_file(tmp_path / "empty.jpg", tmp_path / "g.png", tiny_codec)
    assert _files(tmp_path) == {"empty.jpg", "weights"}


def test_unknown_format_gray_refused(tmp_path, tiny_codec):
    from invgray_cli.io.writing import write_gray_png

    write_gray_png(np.zeros((4, 4), np.uint8), None, {"invgray": '{"format": 9, "model": "a.b", "sha256": "00"}'}, tmp_path / "g.png")
    with pytest.raises(InvgrayError, match="format 9"):
        decode_file(tmp_path / "g.png", tmp_path / "c.png", device="cpu")
    assert not (tmp_path / "c.png").exists()


# ---- rembg-style API ----------------------------------------------------------------------------


def test_api_same_type_out(tiny_codec, tmp_path):
    rgb = _rgb()
    gray = encode(rgb, tiny_codec)
    assert isinstance(gray, np.ndarray) and gray.shape == (23, 37)
    rgba = np.dstack([rgb, np.full((23, 37), 9, np.uint8)])
    gray_alpha = encode(rgba, tiny_codec)
    assert gray_alpha.shape == (23, 37, 2) and (gray_alpha[:, :, 1] == 9).all()
    assert decode(gray_alpha, tiny_codec).shape == (23, 37, 4)
    assert np.array_equal(decode(gray, tiny_codec), decode_array(tiny_codec, gray))

    pil_gray = encode(Image.fromarray(rgba, "RGBA"), tiny_codec)
    assert isinstance(pil_gray, Image.Image) and pil_gray.mode == "LA" and "invgray" in pil_gray.info
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pil_colour = decode(pil_gray, tiny_codec)
    assert pil_colour.mode == "RGBA" and pil_colour.size == (37, 23)

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG")
    png = encode(buffer.getvalue(), tiny_codec)
    assert isinstance(png, bytes) and parse_chunk(Image.open(io.BytesIO(png)).text).model == "igray.tiny"
    colour = decode(png, tiny_codec)
    assert isinstance(colour, bytes) and Image.open(io.BytesIO(colour)).mode == "RGB"
    assert Image.open(io.BytesIO(decode(png, tiny_codec, format="JPEG"))).format == "JPEG"


def test_api_loads_by_itself(shipped_tiny):
    codec = load_model(device="cpu")
    assert isinstance(codec, Codec) and codec.info.name == "igray.tiny"
    gray = encode(_rgb(), device="cpu")
    assert isinstance(gray, np.ndarray) and gray.shape == (23, 37)
    assert invgray_cli.encode is encode and invgray_cli.load_model is load_model
    with pytest.warns(UserWarning, match="no invgray chunk"):
        decode(Image.fromarray(gray), device="cpu")


def test_api_rejects_other_types(tiny_codec):
    with pytest.raises(TypeError, match="PIL image, a numpy array or bytes"):
        encode("photo.jpg", tiny_codec)
    assert api_module.decode is decode


def test_api_applies_exif_orientation_to_pil_images(tiny_codec, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(4, 8)).save(tmp_path / "r.jpg", exif=exif)
    assert encode(Image.open(tmp_path / "r.jpg"), tiny_codec).size == (4, 8)  # PIL size is (width, height)


def test_out_of_memory_becomes_a_one_line_error(tiny_codec, monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")

    monkeypatch.setattr(nets_module, "run_tiled", exhausted)
    with pytest.raises(InvgrayError, match="out of memory on cpu"):
        encode_array(tiny_codec, _rgb())


def test_precision_is_chosen_per_device(weights):
    import torch

    from invgray_cli.codec.nets import Codec
    from invgray_cli.devices import compute_dtype
    from invgray_cli.errors import InvgrayError

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compute_dtype("auto", cpu) is None and compute_dtype("fp32", cpu) is None
    assert compute_dtype("auto", cuda) == torch.float16 and compute_dtype("fp32", cuda) is None
    assert compute_dtype("fp16", cuda) == torch.float16
    with pytest.raises(InvgrayError, match="CUDA only"):
        compute_dtype("fp16", cpu)
    with pytest.raises(InvgrayError, match="unknown precision"):
        compute_dtype("fp8", cpu)
    assert Codec.load(weights=weights, device="cpu").precision == "fp32"


def test_precision_option_errors_are_usage_errors(weights, tmp_path):
    from cli_helpers import assert_one_line_error, photo, run

    source = photo(tmp_path / "a.png")
    assert_one_line_error(run("encode", source, "--precision", "fp8", "--weights", weights), 2, "fp8")
    assert_one_line_error(run("encode", source, "--device", "cpu", "--precision", "fp16", "--weights", weights),
                          1, "CUDA only")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_on_cuda_stays_close_to_fp32(weights):
    from invgray_cli.codec.nets import Codec

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    fp32 = Codec.load(weights=weights, device="cuda", precision="fp32")
    fp16 = Codec.load(weights=weights, device="cuda", precision="fp16")
    gray32, gray16 = encode_array(fp32, rgb).astype(int), encode_array(fp16, rgb).astype(int)
    assert np.abs(gray32 - gray16).max() <= 2
    colour32, colour16 = decode_array(fp32, encode_array(fp32, rgb)), decode_array(fp16, encode_array(fp32, rgb))
    assert np.abs(colour32.astype(int) - colour16.astype(int)).mean() < 1.0


def test_batches_equal_one_image_at_a_time(weights, device):
    from invgray_cli.codec.nets import Codec

    codec = Codec.load(weights=weights, device=device, tile=32, precision="fp32")
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((40, 52, 3), (33, 20, 3), (40, 52, 3))]
    grays = encode_batch(codec, photos)
    assert [g.shape for g in grays] == [(40, 52), (33, 20), (40, 52)]
    for photo, gray in zip(photos, grays):
        difference = np.abs(gray.astype(int) - encode_array(codec, photo).astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001
    for gray, colour in zip(grays, decode_batch(codec, grays)):  # a batch's kernels may round differently
        difference = np.abs(colour.astype(int) - decode_array(codec, gray).astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001
    held = codec.with_gray_floor(0.999)  # the gray guard acts per image in a batch too
    assert any(encoded.strength < 1.0 for encoded in encode_photos(held, photos))
    for photo, gray in zip(photos, encode_batch(held, photos)):
        assert np.abs(gray.astype(int) - encode_array(held, photo).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="uint8"):
        encode_batch(codec, [photos[0], photos[0].astype(np.float32)])


def test_the_package_exports_its_error():
    from invgray_cli.errors import InvgrayError

    assert invgray_cli.InvgrayError is InvgrayError and "InvgrayError" in invgray_cli.__all__
