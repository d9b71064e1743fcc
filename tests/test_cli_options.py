"""One vocabulary on the command line (issue 22 item 5): the options of every command that runs a
net declared once and checked alike, one meaning per option name, old spellings read with a note,
and the command line kept apart from the library packages."""
from __future__ import annotations

import ast
import json
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from cli_helpers import assert_one_line_error, photo, run
from invgray_cli.cli.app import COMMANDS, cli
from invgray_cli.cli.options import new_spellings, option_group

PACKAGE = Path(__file__).resolve().parents[1] / "invgray_cli"
EVERYWHERE = ("--device", "--threads")  # where a command's net runs applies to all of them
NET_COMMANDS = {
    "encode": EVERYWHERE + ("--precision", "--tile"),
    "decode": EVERYWHERE + ("--precision", "--tile"),
    "eval": EVERYWHERE + ("--precision", "--tile"),
    "bench": EVERYWHERE + ("--precision", "--tile"),
    "colorize": EVERYWHERE,  # the colouriser runs fp32 and tiles by its own U-Net's margin
    "train": EVERYWHERE,  # training runs on crops, fp32 (bf16 autocast on CUDA)
    "train-colorizer": EVERYWHERE,
    "train-detector": EVERYWHERE,
    "train-frames": EVERYWHERE,
    "train-jpeg-decoder": EVERYWHERE,
}


def command(name: str) -> click.Command:
    found = cli.get_command(click.Context(cli), name)
    assert found is not None, name
    return found


def options_of(name: str) -> dict[str, click.Option]:
    return {flag: param for param in command(name).params if isinstance(param, click.Option) for flag in param.opts}


def kind(option: click.Option) -> str:
    return json.dumps(option.type.to_info_dict(), sort_keys=True, default=str)


def declaration(option: click.Option) -> tuple:
    return option.name, option.help, option.metavar, kind(option), option.default, option.callback


@pytest.mark.parametrize("name", sorted(NET_COMMANDS))
def test_every_command_that_runs_a_net_shares_one_declaration_of_its_options(name: str) -> None:
    options, reference = options_of(name), options_of("encode")
    for flag in NET_COMMANDS[name]:
        assert flag in options, (name, flag)
        if not (name == "bench" and flag == "--device"):  # bench times several devices: a list, each checked alike
            assert declaration(options[flag]) == declaration(reference[flag]), (name, flag)
    for flag in {"--precision", "--tile"} - set(NET_COMMANDS[name]):
        assert flag not in options, (name, flag)


def test_each_option_name_means_one_thing() -> None:
    every = {name: options_of(name) for name in COMMANDS}
    assert all("--init-from" not in options for options in every.values())
    assert {name for name, options in every.items() if "--init" in options} == {
        "train", "train-colorizer", "train-jpeg-decoder"}
    assert {name for name, options in every.items() if "--loss" in options} == {"train"}
    assert every["train"]["--loss"].metavar == "NAME=VALUE"
    assert {name for name, options in every.items() if "--jpeg" in options} == {"eval"}  # JPEG qualities
    assert "--jpeg-share" in every["train"] and "--regression" in every["train-colorizer"]
    for flag in ("--json", "-q"):  # one declaration, the same help everywhere
        assert len({declaration(options[flag]) for options in every.values() if flag in options}) == 1, flag
    for flag in ("--weights", "--model"):  # the help says what the file or model is for in each command
        declared = {(o.name, kind(o), o.callback) for o in (options.get(flag) for options in every.values()) if o}
        assert len(declared) == 1, (flag, declared)


def test_bench_tile_goes_through_the_tile_check(weights: Path) -> None:
    bench = assert_one_line_error(run("bench", "--sizes", "32", "--weights", weights, "--tile", 16), 2, "at least 32")
    photo_line = assert_one_line_error(run("encode", "x.png", "--weights", weights, "--tile", 16), 2, "at least 32")
    assert bench.replace("bench", "encode") == photo_line


def test_bench_devices_are_each_checked() -> None:
    assert_one_line_error(run("bench", "--random", "--device", "cpu,gpu"), 2, "'gpu' is not a device")
    assert_one_line_error(run("bench", "--random", "--device", ","), 2, "at least one")


def test_bench_reports_the_precision_and_threads_it_ran(weights: Path) -> None:
    threads = torch.get_num_threads()
    try:
        result = run("bench", "--sizes", "32", "--repeats", "1", "--warmup", "0", "--device", "cpu", "--weights",
                     weights, "--threads", 1, "--precision", "fp32", "--json")
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["devices"]["cpu"]["precision"] == "fp32" and "dtype" not in report["devices"]["cpu"]
    assert report["threads"] == 1 and "fp32" in result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bench_on_cuda_reports_the_fp16_it_ran_under_auto() -> None:
    args = ("bench", "--random", "--sizes", "64", "--repeats", 1, "--warmup", 0, "--json", "-q")
    auto = json.loads(run(*args, "--device", "cuda,cpu").stdout)["devices"]
    assert (auto["cuda"]["precision"], auto["cpu"]["precision"]) == ("fp16", "fp32")
    assert json.loads(run(*args, "--device", "cuda", "--precision", "fp32").stdout)["devices"]["cuda"]["precision"] == "fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_fp16_on_the_cpu_is_refused_as_encode_refuses_it() -> None:
    assert_one_line_error(run("bench", "--random", "--sizes", "32", "--device", "cpu", "--precision", "fp16"), 1,
                          "fp16 runs on CUDA only")


@pytest.mark.parametrize("name", ["eval", "bench"])
def test_model_and_weights_together_is_a_usage_error(name: str, tmp_path: Path) -> None:
    args = [photo(tmp_path / "a.png")] if name == "eval" else []
    result = run(name, *args, "--model", "invisible_v2", "--weights", tmp_path / "w.safetensors")
    assert_one_line_error(result, 2, "--model and --weights")


def test_eval_colorize_refuses_the_codec_s_net_options(tmp_path: Path) -> None:
    source = photo(tmp_path / "a.png")
    assert_one_line_error(run("eval", source, "--colorize", "--tile", 64), 2, "--tile")
    assert_one_line_error(run("eval", source, "--colorizer-weights", tmp_path / "c.safetensors"), 2, "--colorize")


@pytest.mark.parametrize("name,old,value,new", [
    ("train", "--jpeg", "2", "--jpeg-share"),
    ("train-colorizer", "--loss", "l2", "--regression"),
    ("train-colorizer", "--init-from", "missing.safetensors", "--init"),
    ("train-jpeg-decoder", "--init-from", "missing.safetensors", "--init"),
])
def test_old_spellings_are_read_as_the_new_with_a_note(name: str, old: str, value: str, new: str,
                                                        tmp_path: Path) -> None:
    result = run(name, tmp_path, "--out", tmp_path / "x.ckpt", f"{old}={value}")  # a bad value: stops before training
    line = assert_one_line_error(result, 2, new)
    assert f"'{new}'" in line and f"'{old}'" not in line
    notes = [text for text in result.stderr.splitlines() if text.startswith("invgray: note:")]
    assert notes == [f"invgray: note: `{name} {old}` is now {new}; the old name will go in a later version"]


def test_new_spellings_leave_arguments_after_the_end_of_options_alone(capsys: pytest.CaptureFixture) -> None:
    renamed = {"--init-from": "--init"}
    args = ["--init-from", "a", "--init-from=b", "--", "--init-from"]
    assert new_spellings(args, renamed, "train-x") == ["--init", "a", "--init=b", "--", "--init-from"]
    assert capsys.readouterr().err.count("note:") == 1  # one note per old name, however often it is used
    assert new_spellings(["--init-fromage"], renamed, "train-x") == ["--init-fromage"]


@dataclass(frozen=True)
class Pair:
    left: int
    right: str


def test_an_option_group_hands_the_command_one_frozen_value() -> None:
    seen = []

    @click.command()
    @option_group("pair", Pair, [click.option("--left", type=int, default=1), click.option("--right", default="r")])
    @click.option("--other", default=0)
    def show(pair: Pair, other: int) -> None:
        seen.append((pair, other))

    result = CliRunner().invoke(show, ["--left", "5", "--other", "3"])
    assert result.exit_code == 0, result.output
    assert seen == [(Pair(5, "r"), 3)] and [p.name for p in show.params] == ["left", "right", "other"]
    with pytest.raises(FrozenInstanceError):
        seen[0][0].left = 6  # type: ignore[misc]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_library_packages_hold_no_click_and_never_import_the_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] in ("cli", "__main__.py"):  # the command line and its entry point
            continue
        imports = _imports(path)
        assert "click" not in imports, path
        assert not any(name.startswith("invgray_cli.cli") for name in imports), path


def test_every_command_lives_in_its_own_cli_module() -> None:
    for name, (module, attribute) in COMMANDS.items():
        assert module.startswith("invgray_cli.cli."), name
        assert command(name).name == name
    assert (PACKAGE / "cli" / "app.py").read_text().count("@click.command") == 0  # the group only
