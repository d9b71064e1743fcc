"""Peak resident memory of encoding and decoding a large photo on CPU through the real file path.

Writes a synthetic photo-like image (JPEG by default) to a temporary folder, then in fresh
subprocesses encodes it to a gray PNG and decodes that to a colour PNG, and reports each
process's peak RSS (``wait4`` rusage ``ru_maxrss``). Target for 7680x4320: <= 1.5 GB.

    python benchmarks/peak_rss_8k.py                     # 7680x4320 through the API (encode_file/decode_file)
    python benchmarks/peak_rss_8k.py --via cli --json    # through `python -m invgray_cli encode/decode`
    python benchmarks/peak_rss_8k.py --size 1024x768     # quick smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout's invgray_cli, installed or not

TARGET_BYTES = 1.5e9

WORKER = """
import sys
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.files import decode_file, encode_file
step, source, dest, weights, tile = sys.argv[1:6]
codec = Codec.load(weights=weights, device="cpu", tile=None if tile == "auto" else int(tile))
if step == "encode":
    encode_file(source, dest, codec)
else:
    decode_file(source, dest, codec=codec)
"""


def synthetic_large_photo(width: int, height: int, path: Path) -> None:
    """A smooth photo-like image: a small synthetic photo upscaled (no full-size float arrays)."""
    from PIL import Image

    from invgray_cli.bench import synthetic_photo

    small = synthetic_photo((max(1, width // 4), max(1, height // 4)), seed=0)
    image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    image.save(path, quality=92) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)


def weights_for_run(folder: Path, random: bool) -> tuple[Path, str]:
    """(weights file, model name): the shipped default, else a random net saved into ``folder``."""
    from invgray_cli.models import zoo as registry

    name = registry.default_model_name()
    if name is not None and not random:
        entry = registry.find_entry(name)
        return registry.weights_dir() / entry.file, name
    import torch

    from invgray_cli.models.net import InvertibleGray, NetConfig
    from invgray_cli.models.weights import save_weights

    torch.manual_seed(0)
    path = folder / "random.safetensors"
    save_weights(InvertibleGray(NetConfig()), path, name="random.default")
    return path, "random.default"


def run_measured(command: list[str]) -> dict:
    """Run ``command``; its wall time and peak RSS in bytes (Linux reports ru_maxrss in KiB)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    return {"peak_rss_bytes": usage.ru_maxrss * 1024, "seconds": round(seconds, 2)}


def step_command(via: str, step: str, source: Path, dest: Path, weights: Path, tile: str) -> list[str]:
    if via == "api":
        return [sys.executable, "-c", WORKER, step, str(source), str(dest), str(weights), tile]
    command = [sys.executable, "-m", "invgray_cli", step, str(source), "-o", str(dest), "--weights", str(weights),
               "--device", "cpu", "-q", "--force"]
    return command + ([] if tile == "auto" else ["--tile", tile])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="7680x4320", help="WIDTHxHEIGHT (default 7680x4320)")
    parser.add_argument("--input-format", default="jpg", choices=["jpg", "png"])
    parser.add_argument("--via", default="api", choices=["api", "cli"], help="encode_file/decode_file or the CLI")
    parser.add_argument("--tile", default="auto", help="tile edge, or auto")
    parser.add_argument("--random", action="store_true", help="random net even when weights are shipped")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="invgray-rss-") as tmp:
        folder = Path(tmp)
        photo, gray, colour = folder / f"photo.{args.input_format}", folder / "photo.gray.png", folder / "photo.color.png"
        synthetic_large_photo(width, height, photo)
        weights, model = weights_for_run(folder, args.random)
        baseline = run_measured([sys.executable, "-c", "import torch, invgray_cli.codec.files"])
        encode = run_measured(step_command(args.via, "encode", photo, gray, weights, args.tile))
        decode = run_measured(step_command(args.via, "decode", gray, colour, weights, args.tile))
        files = {p.name: p.stat().st_size for p in (photo, gray, colour)}

    import torch

    from invgray_cli import __version__

    peak = max(encode["peak_rss_bytes"], decode["peak_rss_bytes"])
    report = {
        "name": "peak_rss_8k",
        "description": "peak RSS of one process encoding (then one decoding) a synthetic photo on CPU via the file path",
        "size": {"width": width, "height": height}, "via": args.via, "tile": args.tile, "model": model,
        "versions": {"invgray": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "results": {"import_only": baseline, "encode": encode, "decode": decode, "file_bytes": files,
                    "peak_rss_bytes": peak, "target_bytes": TARGET_BYTES, "pass": peak <= TARGET_BYTES},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        mb = lambda b: f"{b / 1e6:,.0f} MB"  # noqa: E731
        print(f"{width}x{height} via {args.via}, tile {args.tile}, model {model}")
        print(f"  import torch+invgray only: {mb(baseline['peak_rss_bytes'])}")
        print(f"  encode: peak RSS {mb(encode['peak_rss_bytes'])} in {encode['seconds']} s")
        print(f"  decode: peak RSS {mb(decode['peak_rss_bytes'])} in {decode['seconds']} s")
        print(f"  peak {mb(peak)} (target <= {mb(TARGET_BYTES)}): {'PASS' if report['results']['pass'] else 'FAIL'}")
    return 0 if report["results"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
