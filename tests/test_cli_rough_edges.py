"""The new user's list (issue 10): each rough edge, reproduced and held fixed."""
from __future__ import annotations

from pathlib import Path

from cli_helpers import assert_one_line_error, files_in, photo, run, weights  # noqa: F401 - fixtures


def test_several_inputs_with_a_file_name_for_o_is_refused(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.jpg")
    photo(tmp_path / "b.jpg")
    result = run("encode", tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "out.png", "--weights", weights)
    assert_one_line_error(result, 2, "looks like a file name", "folder")
    assert not (tmp_path / "out.png").exists()


def test_o_naming_the_input_folder_writes_beside_the_inputs(tmp_path: Path, weights: Path) -> None:
    photos = tmp_path / "photos"
    photo(photos / "a.jpg")
    photo(photos / "sub" / "b.jpg")
    result = run("encode", photos, "-o", photos, "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert files_in(photos) == {"a.jpg", "a.gray.png", "sub/b.jpg", "sub/b.gray.png"}


def test_files_inside_the_output_folder_are_passed_over_with_a_note(tmp_path: Path, weights: Path) -> None:
    photos = tmp_path / "photos"
    photo(photos / "a.jpg")
    photo(photos / "grays" / "old.jpg")  # a photo the user keeps in what is now the output folder
    result = run("encode", photos, "-o", photos / "grays", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    assert "old.jpg: inside the output folder" in result.stderr
    assert files_in(photos / "grays") == {"old.jpg", "a.gray.png"}
