"""The zoo: one table of every shipped file, names users type, companions found through their codec
model's entry, resolution of the model to run, and `invgray models`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import TINY_NAME, assert_one_line_error, codec_entry, photo, run, run_json, ship_only, \
    ship_companion
from invgray_cli.errors import InvgrayError
from invgray_cli.models import zoo
from invgray_cli.models.detector import CodeDetector, DetectorConfig
from invgray_cli.models.net import InvertibleGray, NetConfig
from invgray_cli.models.weights import file_sha256, save_weights

COMMON = ["name", "description", "model", "versions", "device"]


def test_the_table_is_whole_and_consistent():
    names = [entry.name for entry in zoo.ZOO]
    assert len(set(names)) == len(names) and len({entry.file for entry in zoo.ZOO}) == len(names)
    assert {entry.role for entry in zoo.ZOO} == set(zoo.ROLES)  # every role ships
    codec_names = {entry.name for entry in zoo.entries(zoo.CODEC)}
    assert zoo.default_model_name() == zoo.entries(zoo.CODEC)[0].name == "igray_s4w96.invisible_v2"
    for entry in zoo.ZOO:
        assert zoo.NAME_PATTERN.fullmatch(entry.name) and re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.sha256[:8] in entry.file and (zoo.weights_dir() / entry.card).is_file()
        is_codec = entry.role == zoo.CODEC
        assert (entry.divisibility is not None) == is_codec == (entry.receptive_field is not None)
        companion = entry.role not in (zoo.CODEC, zoo.COLORIZER)
        assert (entry.serves in codec_names) if companion else entry.serves is None, entry.name


def test_the_default_models_companions_are_found_through_its_entry():
    default = zoo.entries(zoo.CODEC)[0]
    for role in (zoo.DETECTOR, zoo.EDGE_DECODER, zoo.JPEG_DECODER, zoo.FRAME_JUDGE):
        assert zoo.companion(default.sha256, role).serves == default.name
        assert zoo.companion("0" * 64, role) is None  # a --weights file of another net has none
    assert zoo.companion(zoo.entries(zoo.CODEC)[1].sha256, zoo.DETECTOR) is None  # photos789_v1 has none


def test_a_companion_serves_the_model_it_names(registered, monkeypatch):
    detector_file = registered.parent / "det.safetensors"
    save_weights(CodeDetector(DetectorConfig(period=2, width=4)), detector_file)
    ship_companion(monkeypatch, detector_file, zoo.DETECTOR)
    zoo.shipped_detector.cache_clear()
    try:
        detector = zoo.shipped_detector(file_sha256(registered))
        assert isinstance(detector, CodeDetector) and detector.config.width == 4
        assert zoo.shipped_frame_judge(file_sha256(registered)) is None  # none listed: none
        detector_file.unlink()
        zoo.shipped_detector.cache_clear()
        with pytest.raises(InvgrayError, match=r"shipped code detector is missing: .*det\.safetensors"):
            zoo.shipped_detector(file_sha256(registered))
    finally:
        zoo.shipped_detector.cache_clear()


def test_names_users_type():
    assert zoo.find_entry("igray_s4w96.invisible_v2").name == "igray_s4w96.invisible_v2"
    assert zoo.find_entry("invisible_v2").name == "igray_s4w96.invisible_v2"  # the tag, as README's tables say
    assert zoo.find_entry("photos789_v1").name == "igray_s4w96.photos789_v1"
    assert zoo.find_entry("hints_v1", zoo.COLORIZER).name == "icolor_u24.hints_v1"
    assert zoo.find_entry("icolor_u24", zoo.COLORIZER).name == "icolor_u24.hints_v1"  # a unique arch too
    with pytest.raises(InvgrayError, match=r"'igray_s4w96' could be any of igray_s4w96\.invisible_v2, "
                                           r"igray_s4w96\.photos789_v1; give the full name"):
        zoo.find_entry("igray_s4w96")
    with pytest.raises(InvgrayError, match=r"unknown codec model 'invisble_v2'; did you mean 'invisible_v2'\? "
                                           r"\(shipped: igray_s4w96\.invisible_v2, igray_s4w96\.photos789_v1\)"):
        zoo.find_entry("invisble_v2")
    with pytest.raises(InvgrayError, match=r"unknown codec model 'x\\x1b\[2J' \(shipped"):  # shown escaped
        zoo.find_entry("x\x1b[2J")
    with pytest.raises(InvgrayError, match="unknown codec model 'hints_v1'"):  # a colouriser is not a codec model
        zoo.find_entry("hints_v1")


def test_resolve_the_model_to_run(registered, tiny_model, tmp_path, monkeypatch):
    other = tmp_path / "w" / "other.safetensors"
    save_weights(InvertibleGray(NetConfig(scale=2, width=4, encoder_blocks=1, decoder_blocks=1)), other, name="x.other")
    ship_only(monkeypatch, registered.parent, codec_entry(registered), codec_entry(other, "igray.other"))
    net, info = zoo.resolve_model()
    assert (info.name, info.sha256, info.path) == (TINY_NAME, file_sha256(registered), registered)
    assert (info.divisibility, info.receptive_field) == (net.divisibility, net.receptive_field)
    assert zoo.resolve_model("other")[1].name == "igray.other"  # by its tag
    assert zoo.resolve_model(weights_path=other)[1].name == "igray.other"  # a shipped file by path is that model
    ship_only(monkeypatch, None)
    assert zoo.resolve_model("whatever.ignored", other)[1].name == "x.other"  # the path wins; its own name
    with pytest.raises(InvgrayError, match=r"no shipped weights; pass --weights PATH"):
        zoo.resolve_model()


def test_a_shipped_file_tampered_with_or_missing(registered):
    registered.write_bytes(registered.read_bytes() + b" ")
    with pytest.raises(InvgrayError, match="tampered"):
        zoo.resolve_model()
    registered.unlink()
    with pytest.raises(InvgrayError, match=r"shipped codec model is missing: .*'tiny\.test'"):
        zoo.resolve_model()


def test_weights_dir_is_the_repo_folder(monkeypatch):
    monkeypatch.delenv(zoo.WEIGHTS_DIR_ENV, raising=False)
    assert zoo.weights_dir().resolve() == Path(__file__).resolve().parents[1] / "weights"


def test_make_entry_for_shipping(weights):
    sha = file_sha256(weights)
    entry = zoo.make_entry(weights, "igray.tiny", "a tiny test net", "MIT")
    assert entry.file == f"igray_tiny-{sha[:8]}.safetensors" == zoo.shipped_file_name("igray.tiny", sha)
    assert entry.sha256 == sha and entry.role == zoo.CODEC and NetConfig(**entry.config).width == 8
    assert (entry.divisibility, entry.receptive_field, entry.card) == (2, 10, "igray.tiny.md")
    with pytest.raises(InvgrayError, match="arch.tag"):
        zoo.make_entry(weights, "Tiny Net", "x", "MIT")


def test_encode_takes_a_models_tag(registered, tmp_path):
    photo(tmp_path / "a.png")
    result = run("encode", tmp_path / "a.png", "-o", tmp_path / "g.png", "--model", "test")
    assert result.exit_code == 0, result.stderr
    from PIL import Image

    assert json.loads(Image.open(tmp_path / "g.png").text["invgray"])["model"] == TINY_NAME  # the full name


@pytest.mark.parametrize("command", ["encode", "eval", "bench", "train-detector", "train-frames", "train-jpeg-decoder"])
def test_an_unknown_model_is_a_usage_error_with_a_suggestion(command, registered, tmp_path):
    photo(tmp_path / "a.png")
    args = {"encode": [tmp_path / "a.png"], "eval": [tmp_path / "a.png"], "bench": []}.get(
        command, [tmp_path, "--out", tmp_path / "run.ckpt"])
    result = run(command, *args, "--model", "tiny.tset")
    assert_one_line_error(result, 2, "unknown codec model 'tiny.tset'", "did you mean 'tiny.test'?", "--model")
    assert "files" not in result.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "w"]


def test_models_lists_every_entry_with_its_role_and_size():
    result = run("models")
    assert result.exit_code == 0, result.stderr
    blocks = {block.split()[0]: " ".join(block.split()) for block in result.stdout.split("\n\n")[1:]}
    assert list(blocks) == [entry.name for entry in zoo.ZOO]
    for entry in zoo.ZOO:
        size = (zoo.weights_dir() / entry.file).stat().st_size / 1e6
        assert blocks[entry.name].startswith(f"{entry.name} {entry.role.words}")
        assert f"{size:.2f} MB file {entry.file}" in blocks[entry.name]
    assert "idetect_p4w32.invisible_v2  code detector of igray_s4w96.invisible_v2\n" in result.stdout
    assert "igray_s4w96.invisible_v2  codec model  (default)\n" in result.stdout
    assert "icolor_u24p.palette_v2  colouriser  (default)\n" in result.stdout


def test_models_json_is_the_one_envelope(monkeypatch, tmp_path):
    result, doc = run_json("models")
    assert result.exit_code == 0 and list(doc)[:5] == COMMON and list(doc)[-1] == "results"
    assert doc["name"] == "invgray-models" and doc["model"]["name"] == zoo.default_model_name()
    records = doc["results"]["entries"]
    assert [r["name"] for r in records] == [e.name for e in zoo.ZOO]
    assert {r["role"] for r in records} == {role.key for role in zoo.ROLES}
    detector = next(r for r in records if r["role"] == "code_detector")
    assert detector["serves"] == "igray_s4w96.invisible_v2" and detector["bytes"] > 0 and not detector["default"]
    monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(tmp_path))  # every file missing: said, not a crash
    assert all(r["bytes"] is None for r in run_json("models")[1]["results"]["entries"])
    assert "file missing" in run("models").stdout
    json.dumps(doc)  # plain JSON all through
