"""The pure rules of the batch command line: inputs, output names, overwrite policy, summary."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from invgray_cli.io import inputs, paths as batch
from invgray_cli.io.inputs import InputItem
from invgray_cli.io.paths import FileRecord
from invgray_cli.errors import InvgrayError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in ["a.jpg", "b.PNG", "notes.txt", "sub/c.webp", "sub/deeper/d.tif", "sub/a.gray.png",
                ".hidden.jpg", ".git/e.jpg"]:
        touch(root / rel)
    return root


def test_folder_is_recursive_sorted_and_skips_non_images(tree: Path) -> None:
    exp = inputs.expand_inputs([str(tree)], skip_suffixes=(batch.GRAY_SUFFIX,))
    assert [i.rel.as_posix() for i in exp.items] == ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.tif"]
    assert all(i.discovered for i in exp.items)
    assert any("notes.txt" in n and "not an image" in n for n in exp.notes)
    assert any("a.gray.png" in n and "an invgray output" in n for n in exp.notes)
    assert all(i.problem is None for i in exp.items)


def test_named_file_is_always_tried_and_listed_once(tree: Path) -> None:
    exp = inputs.expand_inputs([str(tree / "notes.txt"), str(tree / "a.jpg"), str(tree)])
    assert [i.rel.as_posix() for i in exp.items][:2] == ["notes.txt", "a.jpg"]
    assert not exp.items[0].discovered
    assert [i.source for i in exp.items].count(tree / "a.jpg") == 1


def test_glob_mirrors_relative_to_its_fixed_part(tree: Path) -> None:
    exp = inputs.expand_inputs([str(tree / "**" / "*.*")])
    rels = {i.rel.as_posix() for i in exp.items}
    assert {"a.jpg", "sub/c.webp", "sub/deeper/d.tif"} <= rels
    assert "notes.txt" not in rels


def test_missing_path_and_empty_glob_keep_their_place(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    exp = inputs.expand_inputs([str(tmp_path / "nope.jpg"), str(tmp_path / "a.jpg"), str(tmp_path / "*.none")])
    problems = [i.problem for i in exp.items]
    assert problems[1] is None
    assert "no such file" in problems[0] and "no file matches" in problems[2]
    assert [arg for arg, _ in exp.missing] == [str(tmp_path / "nope.jpg"), str(tmp_path / "*.none")]


def test_output_folder_is_not_an_input(tree: Path) -> None:
    touch(tree / "out" / "x.jpg")
    exp = inputs.expand_inputs([str(tree)], exclude=tree / "out")
    assert all("out" not in i.rel.parts for i in exp.items)


def test_stdin() -> None:
    exp = inputs.expand_inputs(["-"])
    assert exp.items == [InputItem(None, Path("stdin"))]
    assert exp.items[0].label == "<stdin>"


@pytest.mark.parametrize("name, suffix, expected", [
    ("photo.jpg", batch.GRAY_SUFFIX, "photo.gray.png"),
    ("photo.gray.png", batch.COLOR_SUFFIX, "photo.color.png"),
    ("photo.GRAY.png", batch.COLOR_SUFFIX, "photo.color.png"),
    ("photo.color.png", batch.GRAY_SUFFIX, "photo.gray.png"),
    ("my.holiday.jpeg", batch.GRAY_SUFFIX, "my.holiday.gray.png"),
    (".gray.png", batch.COLOR_SUFFIX, ".gray.color.png"),
    ("stdin", batch.GRAY_SUFFIX, "stdin.gray.png"),
])
def test_default_output_name(name: str, suffix: str, expected: str) -> None:
    assert batch.default_output_name(name, suffix) == expected


def test_output_path_rules(tmp_path: Path) -> None:
    item = InputItem(tmp_path / "in" / "sub" / "a.jpg", Path("sub/a.jpg"), True)
    gray = batch.GRAY_SUFFIX
    assert batch.output_path_for(item, None, gray, many=True) == tmp_path / "in" / "sub" / "a.gray.png"
    assert batch.output_path_for(item, str(tmp_path / "out"), gray, many=True) == tmp_path / "out/sub/a.gray.png"
    assert batch.output_path_for(item, str(tmp_path / "g.png"), gray, many=False) == tmp_path / "g.png"
    assert batch.output_path_for(item, str(tmp_path) + "/new/", gray, many=False) == tmp_path / "new/a.gray.png"
    assert batch.output_path_for(item, str(tmp_path), gray, many=False) == tmp_path / "a.gray.png"
    assert batch.output_path_for(item, "-", gray, many=False) is None
    assert batch.output_path_for(InputItem(None, Path("stdin")), None, gray, many=False) is None


def test_check_overwrite_policy(tmp_path: Path) -> None:
    src = touch(tmp_path / "a.png")
    out = tmp_path / "a.gray.png"
    assert batch.check_overwrite(src, out, force=False, skip_existing=False) == "write"
    touch(out)
    with pytest.raises(InvgrayError, match="--force"):
        batch.check_overwrite(src, out, force=False, skip_existing=False)
    assert batch.check_overwrite(src, out, force=True, skip_existing=False) == "write"
    assert batch.check_overwrite(src, out, force=False, skip_existing=True) == "skip"
    with pytest.raises(InvgrayError, match="replace its input"):
        batch.check_overwrite(src, tmp_path / "." / "a.png", force=True, skip_existing=False)
    with pytest.raises(InvgrayError, match="is a folder"):
        batch.check_overwrite(src, tmp_path, force=True, skip_existing=False)


def test_output_may_not_replace_input_through_a_link(tmp_path: Path) -> None:
    src = touch(tmp_path / "a.png")
    os.symlink(src, tmp_path / "link.png")
    os.link(src, tmp_path / "hard.png")
    for alias in ("link.png", "hard.png"):
        with pytest.raises(InvgrayError, match="replace its input"):
            batch.check_overwrite(src, tmp_path / alias, force=True, skip_existing=False)


def test_check_parent(tmp_path: Path) -> None:
    batch.check_parent(tmp_path / "x.png", create=False)
    with pytest.raises(InvgrayError, match="does not exist"):
        batch.check_parent(tmp_path / "missing" / "x.png", create=False)
    assert not (tmp_path / "missing").exists()
    batch.check_parent(tmp_path / "made" / "deep" / "x.png", create=True)
    assert (tmp_path / "made" / "deep").is_dir()
    touch(tmp_path / "file")
    with pytest.raises(InvgrayError, match="not a folder"):
        batch.check_parent(tmp_path / "file" / "x.png", create=True)


def test_find_collision(tmp_path: Path) -> None:
    taken = {(tmp_path / "a.gray.png").resolve(): "a.jpg"}
    assert batch.find_collision(tmp_path / "." / "a.gray.png", taken) == "a.jpg"
    assert batch.find_collision(tmp_path / "b.gray.png", taken) is None


def test_summary_and_exit_code() -> None:
    ok = FileRecord("a.jpg", "a.gray.png", "ok", bytes=10, width=2, height=3, seconds=0.1, model="m")
    skipped = FileRecord("b.jpg", "b.gray.png", "skipped")
    failed = FileRecord("c.jpg", None, "failed", error="broken")
    doc = batch.summary([ok, skipped, failed])
    assert doc["counts"] == {"ok": 1, "skipped": 1, "failed": 1}
    assert doc["ok"] is False and doc["files"][0]["model"] == "m"
    assert doc["files"][2] == {**doc["files"][2], "status": "failed", "error": "broken"}
    assert batch.exit_code([ok, skipped]) == 0
    assert batch.exit_code([ok, failed]) == 1


def test_plan_jobs_decides_every_file_up_front(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "a.jpg")
    touch(tmp_path / "in" / "sub" / "b.jpg")
    touch(tmp_path / "out" / "a.gray.png")  # exists already
    jobs, many = batch.plan_jobs([str(tmp_path / "in"), str(tmp_path / "gone.jpg")], str(tmp_path / "out"),
                                 batch.GRAY_SUFFIX)
    assert many and not any(j.skip for j in jobs)
    assert [j.error is None for j in jobs] == [False, True, False]
    assert "--force" in jobs[0].error and "no such file" in jobs[2].error
    assert jobs[1].output == tmp_path / "out" / "sub" / "b.gray.png" and (tmp_path / "out" / "sub").is_dir()
    jobs, _ = batch.plan_jobs([str(tmp_path / "in")], str(tmp_path / "out"), batch.GRAY_SUFFIX, skip_existing=True)
    assert [(j.skip, j.note) for j in jobs] == [(True, batch.OUTPUT_EXISTS), (False, None)]


def test_plan_jobs_refuses_two_inputs_with_one_output(tmp_path: Path) -> None:
    touch(tmp_path / "x" / "a.jpg")
    touch(tmp_path / "y" / "a.png")
    jobs, _ = batch.plan_jobs([str(tmp_path / "x"), str(tmp_path / "y")], str(tmp_path / "out"), batch.GRAY_SUFFIX)
    assert jobs[0].error is None and "also the output of" in jobs[1].error


@pytest.mark.parametrize("inputs, output, options, needle", [
    (["a.jpg"], None, {"force": True, "skip_existing": True}, "contradict"),
    (["-", "a.jpg"], None, {}, "only input"),
    (["a.jpg", "b.jpg"], "-", {}, "single input"),
    (["a.jpg", "b.jpg"], "a.jpg", {}, "must be a folder"),
    (["-"], None, {"stdout_refusal": "no stdout here"}, "no stdout here"),
])
def test_plan_jobs_usage_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: list[str],
                                  output: str | None, options: dict, needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "b.jpg")
    with pytest.raises(batch.UsageProblem, match=needle):
        batch.plan_jobs(inputs, output, batch.GRAY_SUFFIX, **options)


def test_plan_jobs_with_nothing_to_do(tmp_path: Path) -> None:
    touch(tmp_path / "notes.txt")
    with pytest.raises(InvgrayError, match="no images found"):
        batch.plan_jobs([str(tmp_path)], None, batch.GRAY_SUFFIX)


def test_refused_files_are_noted(tree: Path) -> None:
    exp = inputs.expand_inputs([str(tree), str(tree / "a.jpg")], refuse=lambda p: "colour" if p.suffix == ".jpg" else None)
    assert [i.rel.as_posix() for i in exp.items] == ["b.PNG", "sub/a.gray.png", "sub/c.webp", "sub/deeper/d.tif", "a.jpg"]
    assert any("a.jpg: colour" in n for n in exp.notes)


def test_files_passed_over_in_a_folder_are_skipped_jobs(tree: Path) -> None:
    jobs, many = batch.plan_jobs([str(tree)], None, batch.GRAY_SUFFIX, refuse=lambda p: "refused" if p.suffix == ".webp" else None)
    done = [j.item.rel.as_posix() for j in jobs if not j.skip]
    skipped = [(j.item.rel.as_posix(), j.note) for j in jobs if j.skip]
    assert many and done == ["a.jpg", "b.PNG", "sub/deeper/d.tif"]
    assert skipped == [("notes.txt", "not an image file name"),
                       ("sub/a.gray.png", "an invgray output (.gray.png), a gray that `invgray decode` restores"),
                       ("sub/c.webp", "refused")]
    assert all(j.output is None and j.error is None and j.item.discovered for j in jobs if j.skip)


def test_nothing_to_do_says_what_was_skipped_and_why(tmp_path: Path) -> None:
    for name in ("a.gray.png", "b.gray.png", "c.gray.png", "d.gray.png", "notes.txt"):
        touch(tmp_path / "grays" / name)
    with pytest.raises(InvgrayError) as error:
        batch.plan_jobs([str(tmp_path / "grays")], None, batch.GRAY_SUFFIX)
    assert str(error.value) == (f"no images found in {tmp_path / 'grays'}: skipped 5 files: an invgray output (.gray.png), "
                                "a gray that `invgray decode` restores — a.gray.png, b.gray.png, c.gray.png and 1 more; "
                                "not an image file name — notes.txt")


def test_a_named_file_refused_is_that_jobs_error(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "x.gray.png")
    jobs, many = batch.plan_jobs([str(tmp_path / "a.jpg"), str(tmp_path / "x.gray.png")], str(tmp_path / "out"),
                                 batch.GRAY_SUFFIX, refuse_named=lambda p: "a gray" if "gray" in p.name else None)
    assert [j.error for j in jobs] == [None, f"{tmp_path / 'x.gray.png'}: a gray"]
    assert not (tmp_path / "out" / "x.gray.png").exists() and many


@pytest.mark.parametrize("skips, line", [
    ([("r", "a")], "skipped 1 file: r — a"),
    ([("r", "a"), ("s", "b"), ("r", "c")], "skipped 3 files: r — a, c; s — b"),
    ([("r", n) for n in "abcde"], "skipped 5 files: r — a, b, c and 2 more"),
])
def test_skips_are_summed_up_in_one_line(skips: list[tuple[str, str]], line: str) -> None:
    assert batch.summarise_skips(skips) == line
    left_out = "and 2 more" in line
    assert batch.summarise_skips(skips, listed_in="--json") == line + ("; --json lists them all" if left_out else "")
