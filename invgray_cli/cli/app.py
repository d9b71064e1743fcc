"""Stage cli: the ``invgray`` group and entry point; each command lives in its own module here.

Commands are registered in one table, :data:`COMMANDS`, and imported only when asked for, so
``invgray --version`` answers without importing torch (nor any command); the command modules
import torch, numpy and Pillow inside their functions, so ``invgray --help`` is quick too.
"""
from __future__ import annotations

import ctypes
import importlib
import importlib.util
import sys
from typing import Any, NoReturn

import click

from invgray_cli import __version__
from invgray_cli.cli.runner import PROG, debug_enabled, failure_line, internal_error_line, say
from invgray_cli.errors import InvgrayError

# Every command: its module in cli/ and the click command in it, imported only when asked for
# (and listed only if its module is present).
COMMANDS = {
    "encode": ("invgray_cli.cli.encode", "encode_command"),
    "decode": ("invgray_cli.cli.decode", "decode_command"),
    "colorize": ("invgray_cli.cli.colorize", "colorize_command"),
    "info": ("invgray_cli.cli.info", "info_command"),
    "models": ("invgray_cli.cli.models", "models_command"),
    "eval": ("invgray_cli.cli.eval", "eval_command"),
    "bench": ("invgray_cli.cli.bench", "bench_command"),
    "train": ("invgray_cli.cli.train", "train_command"),
    "train-colorizer": ("invgray_cli.cli.train_nets", "train_colorizer_command"),
    "train-detector": ("invgray_cli.cli.train_nets", "train_detector_command"),
    "train-frames": ("invgray_cli.cli.train_nets", "train_frames_command"),
    "train-jpeg-decoder": ("invgray_cli.cli.train_nets", "train_jpeg_decoder_command"),
}


# ---------------------------------------------------------------- the group


def _fail(message: str, code: int) -> NoReturn:
    say("error", message)
    sys.exit(code)


def _usage_line(error: click.UsageError) -> str:
    message = error.format_message()
    command = error.ctx.command_path if error.ctx is not None else PROG
    return f"{message.rstrip('.')}; see '{command} --help'"


class InvgrayGroup(click.Group):
    """A click group that turns every failure into one line and a stated exit code.

    0 success, 1 a file or the run failed, 2 usage error, 130 interrupted. Unexpected
    exceptions show a traceback only with ``--debug`` (or INVGRAY_DEBUG=1).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _) in COMMANDS.items() if _module_exists(module))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attr) if _module_exists(module) else None

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name or PROG, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as e:  # bare `invgray`: the help, as click < 8.2 did
            click.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
            rv = 0
        except click.UsageError as e:
            _fail(_usage_line(e), 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            _fail("interrupted", 130)
        except InvgrayError as e:
            _fail(str(e), 1)
        except Exception as e:
            line = failure_line(e)
            if debug_enabled(argv) and line == internal_error_line(e):
                raise
            _fail(line, 1)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(PROG, cls=InvgrayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def cli(debug: bool) -> None:
    """invgray: colour photos to ordinary-looking 8-bit gray PNGs that restore their colour.

    \b
      invgray encode photo.jpg            -> photo.gray.png
      invgray decode photo.gray.png       -> photo.color.png
      invgray encode photos/ -o grays/    (folders mirrored, recursive)
      cat a.jpg | invgray encode - | invgray decode - > a.png
    """


def exit_on_sigterm() -> None:
    """SIGTERM (kill, a job scheduler's timeout) unwinds like Ctrl-C, so a half-written output's
    temporary file is removed on the way out; exit status 143 as the shell reports a TERM."""
    import signal
    import threading

    def unwind(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, unwind)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """glibc keeps the memory the nets free for their next call instead of handing it back.

    By default each buffer over ~32 MB is its own mmap, unmapped on free and page-faulted in afresh
    by the next call: a 1024² decode spent 0.19 s of its 0.60 s in the kernel that way on a 2-core
    CPU (0.48 s with this). A process-wide choice, so the CLI makes it and the library does not.
    True where it took effect (Linux with glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return False
    if not mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES):
        # an older glibc refuses over 32 MB; setting the trim threshold alone would pin the mmap
        # threshold at its 128 KB start instead of letting glibc raise it, so leave both alone
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def main() -> None:
    """Console-script entry point."""
    exit_on_sigterm()
    keep_freed_memory()
    cli.main(prog_name=PROG)


if __name__ == "__main__":
    main()
