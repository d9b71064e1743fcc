"""Hostile and faulty files (issue 27): bounded work for JSON from files, text from files escaped
before it is shown, a no-overwrite promise that holds under races, and every failure naming its
cause. Each case: the message, the exit code, and that no partial output is left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from cli_helpers import assert_one_line_error, files_in, photo, run
from invgray_cli.errors import InvgrayError, OutputExists
from invgray_cli.io import filesystem, images as imageio
from invgray_cli.io.chunk import CHUNK_KEY, parse_chunk
from invgray_cli.untrusted import printable

DEEP = "[" * 5000  # Python's parser recursed once per level: RecursionError, "a bug in invgray"
ESCAPES = "\x1b]0;pwned\x07\r\ninvgray: done: forged\x1b[2J"  # sets the title, forges a line, clears the screen


def gray_with_chunk(path: Path, chunk: str) -> Path:
    """A small gray PNG whose invgray chunk is ``chunk``, as another tool could write it."""
    info = PngInfo()
    info.add_text(CHUNK_KEY, chunk)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8), "L").save(path, pnginfo=info)
    return path


def chunk_text(**fields: object) -> str:
    return json.dumps({"format": 3, "model": "tiny.test", "sha256": "ab" * 8, "version": "0.6.0"} | fields)


def assert_clean_stderr(stderr: str) -> None:
    """Nothing from a file reached the terminal raw: no control character, every line invgray's own."""
    assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in stderr), repr(stderr)
    assert all(line.startswith("invgray: ") for line in stderr.splitlines()), stderr


# ---- JSON from files is parsed with limits ------------------------------------------------------


def test_a_deeply_nested_chunk_is_damaged_not_a_bug(tmp_path: Path) -> None:
    gray = gray_with_chunk(tmp_path / "x.gray.png", DEEP)
    line = assert_one_line_error(run("decode", gray, "-o", tmp_path / "x.png"), 1,
                                 "x.gray.png", "chunk of this gray is damaged", "nests deeper than")
    assert "bug" not in line
    assert files_in(tmp_path) == {"x.gray.png"}


def test_a_foreign_jpeg_comment_is_not_invgrays_and_the_photo_encodes(tmp_path: Path, weights: Path) -> None:
    source = tmp_path / "camera.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (18, 24, 3), dtype=np.uint8)).save(
        source, comment=DEEP.encode())
    with Image.open(source) as image:
        assert imageio.jpeg_comment_text(image) == {}
    result = run("encode", source, "-o", tmp_path / "camera.gray.png", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert files_in(tmp_path) == {"camera.jpg", "camera.gray.png", "w/tiny.safetensors"}


@pytest.mark.parametrize("fields, needle", [
    ({"format": True}, "its format is true, not a format number"),
    ({"format": "3"}, 'its format is "3", not a format number'),
    ({"format": 0}, "its format is 0, not a format number"),
    ({"model": 5}, "its model is 5, not a model name"),
    ({"model": None}, "its model is missing"),
    ({"sha256": ""}, 'its weights sha256 is "", not 1 to 64 hex digits'),
    ({"sha256": "not hex"}, 'its weights sha256 is "not hex"'),
    ({"version": ["0.6"]}, 'its version is ["0.6"]'),
])
def test_chunk_fields_of_the_wrong_type_give_one_clear_line(tmp_path: Path, fields: dict, needle: str) -> None:
    with pytest.raises(InvgrayError, match="damaged") as caught:
        parse_chunk({CHUNK_KEY: chunk_text(**fields)})
    assert needle in str(caught.value)
    gray = gray_with_chunk(tmp_path / "x.gray.png", chunk_text(**fields))
    line = assert_one_line_error(run("decode", gray, "-o", tmp_path / "x.png"), 1, "x.gray.png", needle)
    assert "upgrade" not in line and "bug" not in line
    assert files_in(tmp_path) == {"x.gray.png"}


def test_a_chunk_over_its_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(InvgrayError, match="too large"):
        parse_chunk({CHUNK_KEY: chunk_text(model="m" * 70_000)})


def hints_run(tmp_path: Path, content: str | bytes) -> str:
    """``invgray colorize --hints FILE`` with ``content``: the one error line (exit 2, nothing written)."""
    hints = tmp_path / "hints.json"
    hints.write_bytes(content.encode() if isinstance(content, str) else content)
    source = photo(tmp_path / "old.png", mode="L")
    result = run("colorize", source, "--hints", hints, "-o", tmp_path / "out.png")
    line = assert_one_line_error(result, 2, "hints.json")
    assert "bug" not in line
    assert files_in(tmp_path) == {"hints.json", "old.png"}
    return line


def test_a_deeply_nested_hints_file_is_refused(tmp_path: Path) -> None:
    assert "nests deeper than" in hints_run(tmp_path, DEEP)


def test_a_hints_file_over_the_byte_cap_is_refused_before_it_is_read(tmp_path: Path, monkeypatch) -> None:
    from invgray_cli.colorize import session

    hints = tmp_path / "big.json"
    with open(hints, "wb") as handle:  # sparse: the size is there, the bytes are not
        handle.truncate(session.MAX_HINTS_BYTES + 1)
    monkeypatch.setattr(session, "parse_json", lambda *a, **k: pytest.fail("parsed a file over the cap"))
    with pytest.raises(InvgrayError, match=r"big\.json: the hints file is over 1,048,576 bytes"):
        session.read_hints_file(hints)


def test_a_hints_file_over_the_count_cap_is_refused(tmp_path: Path) -> None:
    from invgray_cli.colorize.session import MAX_HINTS

    line = hints_run(tmp_path, json.dumps([0] * (MAX_HINTS + 1)))
    assert f"{MAX_HINTS + 1:,} hints; at most {MAX_HINTS:,}" in line


def test_a_hint_with_x_true_blames_the_coordinate_not_the_colour(tmp_path: Path) -> None:
    line = hints_run(tmp_path, json.dumps([{"x": True, "y": 2, "color": "#102030"}]))
    assert 'hint 0 has "x": true, not a pixel column' in line and "colour" not in line


# ---- text from files is made safe before it is shown --------------------------------------------


def test_printable_escapes_control_and_bidi_characters_only() -> None:
    assert printable(ESCAPES) == "\\x1b]0;pwned\\x07\\r\\ninvgray: done: forged\\x1b[2J"
    assert printable("a\u202eb\x9bc\u2028") == "a\\u202eb\\x9bc\\u2028"
    assert printable("café 写真.png") == "café 写真.png"


def test_a_hostile_model_name_in_a_chunk_is_escaped_in_messages(tmp_path: Path) -> None:
    gray = gray_with_chunk(tmp_path / "x.gray.png", chunk_text(model=ESCAPES))
    result = run("decode", gray, "-o", tmp_path / "x.png")
    assert_one_line_error(result, 1, "x.gray.png", "\\x1b]0;pwned\\x07\\r\\ninvgray: done: forged")
    assert_clean_stderr(result.stderr)
    assert files_in(tmp_path) == {"x.gray.png"}


def test_info_escapes_the_chunk_and_its_json_stays_exact(tmp_path: Path) -> None:
    gray = gray_with_chunk(tmp_path / "x.gray.png", chunk_text(model=ESCAPES, version=ESCAPES))
    shown = run("info", gray)
    assert not any(ord(c) < 0x20 and c != "\n" for c in shown.stdout), repr(shown.stdout)
    assert all(line.startswith((str(gray), "  ")) for line in shown.stdout.splitlines()), shown.stdout
    assert "  model: \\x1b]0;pwned\\x07\\r\\ninvgray: done: forged" in shown.stdout
    facts = run("info", gray, "--json")
    assert facts.exit_code == 0, facts.stderr
    chunk = json.loads(facts.stdout)["results"][0]["invgray"]
    assert chunk["model"] == ESCAPES and chunk["version"] == ESCAPES


def test_a_hostile_file_name_is_escaped_in_messages(tmp_path: Path, weights: Path) -> None:
    bad = tmp_path / "a\x1b[31mred\x07.png"
    bad.write_text("not a picture")
    result = run("encode", bad, "-o", tmp_path / "out.png", "--weights", weights)
    assert_one_line_error(result, 1, "a\\x1b[31mred\\x07.png: not an image")
    assert_clean_stderr(result.stderr)
    assert files_in(tmp_path) == {bad.name, "w/tiny.safetensors"}


def test_progress_labels_escape_control_characters_and_rich_markup() -> None:
    from rich.text import Text

    from invgray_cli.cli.runner import bar_label

    label = bar_label("[/bold]x\x1b[2J.png")
    assert Text.from_markup(label).plain == "[/bold]x\\x1b[2J.png"


# ---- no-overwrite holds under races --------------------------------------------------------------


def test_two_concurrent_writes_without_force_exactly_one_wins(tmp_path: Path) -> None:
    dest = tmp_path / "o.png"
    both_written = threading.Barrier(2)  # both temporary files are full before either claims the name
    outcomes: dict[str, str] = {}

    def write(label: str) -> None:
        def fill(handle) -> None:
            handle.write(label.encode())
            both_written.wait(timeout=10)

        try:
            filesystem.atomic_write(dest, fill, replace=False)
            outcomes[label] = "wrote"
        except OutputExists as exc:
            outcomes[label] = str(exc)

    threads = [threading.Thread(target=write, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    winners = [label for label, outcome in outcomes.items() if outcome == "wrote"]
    assert len(outcomes) == 2 and len(winners) == 1, outcomes
    loser = ({"a", "b"} - set(winners)).pop()
    assert outcomes[loser] == f"{dest} exists; use --force to overwrite it or --skip-existing to keep it"
    assert dest.read_text() == winners[0]
    assert files_in(tmp_path) == {"o.png"}


def test_without_hard_links_the_name_is_still_claimed_once(tmp_path: Path, monkeypatch) -> None:
    """File systems without hard links (FAT, some network shares): an O_EXCL claim of the name instead."""
    import errno

    def no_links(*args: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(filesystem.os, "link", no_links)
    filesystem.atomic_write(tmp_path / "o.png", lambda handle: handle.write(b"first"), replace=False)
    with pytest.raises(OutputExists):
        filesystem.atomic_write(tmp_path / "o.png", lambda handle: handle.write(b"second"), replace=False)
    assert (tmp_path / "o.png").read_bytes() == b"first"
    assert files_in(tmp_path) == {"o.png"}


def test_two_processes_without_force_exactly_one_writes(tmp_path: Path) -> None:
    """Real processes, released together: exactly one exits 0, the other says the file exists."""
    go = tmp_path / "go"
    script = ("import sys, time, pathlib\n"
              "from invgray_cli.errors import OutputExists\n"
              "from invgray_cli.io.filesystem import atomic_write\n"
              "def fill(handle):\n"
              "    handle.write(sys.argv[1].encode())\n"
              f"    while not pathlib.Path({str(go)!r}).exists():\n"
              "        time.sleep(0.005)\n"
              "try:\n"
              f"    atomic_write({str(tmp_path / 'o.png')!r}, fill, replace=False)\n"
              "except OutputExists as e:\n"
              "    sys.exit(str(e))\n")
    processes = [subprocess.Popen([sys.executable, "-c", script, label], stderr=subprocess.PIPE, text=True)
                 for label in ("a", "b")]
    deadline = time.monotonic() + 20
    while len([p for p in tmp_path.iterdir() if p.name.endswith(".part")]) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    codes = sorted((p.wait(timeout=20), p.stderr.read()) for p in processes)
    assert [code for code, _ in codes] == [0, 1], codes
    assert "o.png exists; use --force" in codes[1][1]
    assert (tmp_path / "o.png").read_text() in ("a", "b")
    assert files_in(tmp_path) == {"go", "o.png"}


@pytest.fixture
def output_taken_meanwhile(monkeypatch, tmp_path: Path) -> Path:
    """Another run writes the output while this one encodes (after this one's existence check)."""
    from invgray_cli.codec import files

    real = files.encode_read_photos
    dest = tmp_path / "o.png"

    def encode_while_another_run_writes(*args, **kwargs):
        dest.write_bytes(b"the other run's gray")
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "encode_read_photos", encode_while_another_run_writes)
    return dest


def test_a_cli_run_that_loses_the_race_says_the_file_exists(tmp_path: Path, weights: Path,
                                                            output_taken_meanwhile: Path) -> None:
    photo(tmp_path / "a.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", output_taken_meanwhile, "--weights", weights)
    assert_one_line_error(result, 1, "o.png exists; use --force to overwrite it")
    assert output_taken_meanwhile.read_bytes() == b"the other run's gray"
    assert files_in(tmp_path) - {"w/tiny.safetensors"} == {"a.jpg", "o.png"}


def test_force_still_replaces_what_another_run_wrote(tmp_path: Path, weights: Path,
                                                     output_taken_meanwhile: Path) -> None:
    photo(tmp_path / "a.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", output_taken_meanwhile, "--weights", weights, "--force")
    assert result.exit_code == 0, result.stderr
    assert Image.open(output_taken_meanwhile).mode == "L"
    assert files_in(tmp_path) - {"w/tiny.safetensors"} == {"a.jpg", "o.png"}


def test_a_part_file_left_by_sigkill_is_removed_by_the_next_run(tmp_path: Path) -> None:
    script = ("import time\n"
              "from invgray_cli.io.filesystem import atomic_write\n"
              "def write(handle):\n"
              "    handle.write(b'half')\n"
              "    handle.flush()\n"
              "    print('writing', flush=True)\n"
              "    time.sleep(30)\n"
              f"atomic_write({str(tmp_path / 'o.png')!r}, write)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    live = [p.name for p in tmp_path.iterdir()]
    assert len(live) == 1 and live[0].startswith(".o.png.") and live[0].endswith(".part")
    assert filesystem.remove_stale_parts(tmp_path / "o.png") == []  # its writer is alive: left alone
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=20)
    assert [p.name for p in tmp_path.iterdir()] == live  # what SIGKILL leaves
    filesystem.atomic_write(tmp_path / "o.png", lambda handle: handle.write(b"whole"))
    assert files_in(tmp_path) == {"o.png"}
    assert (tmp_path / "o.png").read_bytes() == b"whole"


def test_stale_part_removal_spares_other_files(tmp_path: Path) -> None:
    kept = [".o.png.part", ".o.png.12345678.part.bak", ".other.png.deadbeef.part", "o.png.deadbeef.part"]
    for name in kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".o.png.0badcafe.part").write_bytes(b"")  # empty and new: a live run may not have locked it yet
    (tmp_path / ".o.png.deadbeef.part").write_bytes(b"stale")
    assert filesystem.remove_stale_parts(tmp_path / "o.png") == [tmp_path / ".o.png.deadbeef.part"]
    assert files_in(tmp_path) == set(kept) | {".o.png.0badcafe.part"}


# ---- every failure names its cause ---------------------------------------------------------------


def test_a_symlink_loop_as_input_is_named(tmp_path: Path, weights: Path) -> None:
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop.png")
    result = run("encode", tmp_path / "loop.png", "-o", tmp_path / "out.png", "--weights", weights)
    line = assert_one_line_error(result, 1, "loop.png: is a symbolic link loop")
    assert "bug" not in line
    assert not (tmp_path / "out.png").exists()


def test_a_fifo_is_named_and_never_waited_on(tmp_path: Path, weights: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")  # no writer: opening it to read would block for ever
    result = run("encode", tmp_path / "pipe.png", "-o", tmp_path / "out.png", "--weights", weights)
    line = assert_one_line_error(result, 1, "pipe.png: is a named pipe (FIFO)", "stdin")
    assert "empty" not in line
    assert not (tmp_path / "out.png").exists()


def test_a_device_is_named(tmp_path: Path, weights: Path) -> None:
    result = run("encode", "/dev/null", "-o", tmp_path / "out.png", "--weights", weights)
    line = assert_one_line_error(result, 1, "/dev/null: is a character device")
    assert "empty" not in line
    assert files_in(tmp_path) == {"w/tiny.safetensors"}


@pytest.fixture
def encode_raises(monkeypatch):
    """Make encode's work raise ``exc``."""
    from invgray_cli.codec import files

    def install(exc: BaseException) -> None:
        def fail(*args, **kwargs):
            raise exc

        monkeypatch.setattr(files, "encode_read_photos", fail)

    return install


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried "
                                                              "to allocate 40000000000 bytes"),
                                 RuntimeError("could not create a primitive")],  # oneDNN's conv under `ulimit -v`
                         ids=["MemoryError", "allocator", "oneDNN"])
def test_out_of_memory_says_what_to_do(tmp_path: Path, weights: Path, encode_raises, exc: BaseException) -> None:
    from invgray_cli.cli.runner import OUT_OF_MEMORY

    encode_raises(exc)
    photo(tmp_path / "a.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", tmp_path / "out.png", "--weights", weights)
    line = assert_one_line_error(result, 1, "a.jpg: " + OUT_OF_MEMORY)
    assert all(word in line for word in ("--tile", "--max-pixels", "--device cpu")) and "bug" not in line
    assert not (tmp_path / "out.png").exists()


def test_out_of_memory_outside_a_file_job_is_the_same_message(tmp_path: Path, monkeypatch) -> None:
    from invgray_cli.cli.runner import OUT_OF_MEMORY

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(imageio, "read_header", no_memory)
    assert_one_line_error(run("info", photo(tmp_path / "a.png")), 1, OUT_OF_MEMORY)


def test_only_a_real_bug_is_called_one(tmp_path: Path, weights: Path, encode_raises) -> None:
    encode_raises(ZeroDivisionError("division by zero"))
    photo(tmp_path / "a.jpg")
    result = run("encode", tmp_path / "a.jpg", "-o", tmp_path / "out.png", "--weights", weights)
    assert_one_line_error(result, 1, "unexpected ZeroDivisionError", "a bug in invgray")
    assert not (tmp_path / "out.png").exists()


def test_a_weights_files_hostile_name_is_not_copied_into_the_grays_it_makes(tmp_path: Path, tiny_model) -> None:
    from invgray_cli.models.weights import save_weights

    hostile = tmp_path / "hostile.safetensors"
    save_weights(tiny_model, hostile, name="\x1b]0;pwned\x07.x\r\ninvgray: forged")
    source = photo(tmp_path / "p.png", 24, 20)
    result = run("encode", source, "-o", tmp_path / "g.png", "--weights", hostile)
    assert result.exit_code == 0, result.stderr
    model = parse_chunk(Image.open(tmp_path / "g.png").text).model
    assert model == "file:hostile" and "\x1b" not in result.stderr
    plain = tmp_path / "plain.safetensors"
    save_weights(tiny_model, plain, name="my_arch.my_tag")  # an ordinary arch.tag is kept
    run("encode", source, "-o", tmp_path / "g2.png", "--weights", plain)
    assert parse_chunk(Image.open(tmp_path / "g2.png").text).model == "my_arch.my_tag"
