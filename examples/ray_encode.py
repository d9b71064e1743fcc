"""Encode a folder of photos with invgray on a Ray cluster (or this machine) through Ray Data.

    pip install "invgray[ray]"
    python examples/ray_encode.py INPUT_DIR OUTPUT_DIR [--workers N] [--model NAME | --weights PATH]

Every photo under INPUT_DIR (recursive) becomes OUTPUT_DIR/<same sub-path>/<name>.gray.png, the
PNG that `invgray decode` reads. Each Ray actor loads the codec once and encodes many photos; with
GPUs in the cluster each actor takes one (``--gpus-per-worker``). INPUT_DIR and OUTPUT_DIR must be
paths that every node sees (a shared file system); see README, "Many machines".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


class EncodeBatch:
    """The Ray Data callable: one codec per actor, one batch of file paths per call."""

    def __init__(self, output_dir: str, model: str | None, weights: str | None, device: str, force: bool) -> None:
        from invgray_cli.codec.nets import Codec

        self.output_dir = Path(output_dir)
        self.force = force
        self.codec = Codec.load(model=model, weights=weights, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from invgray_cli.io.paths import GRAY_SUFFIX, default_output_name
        from invgray_cli.codec.files import encode_file
        from invgray_cli.errors import InvgrayError

        outputs, statuses = [], []
        for source, rel in zip(batch["path"], batch["rel"]):
            target = self.output_dir / Path(rel).parent / default_output_name(Path(rel).name, GRAY_SUFFIX)
            outputs.append(str(target))
            if target.exists() and not self.force:
                statuses.append("skipped: exists")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                result = encode_file(str(source), target, self.codec)
                statuses.append(f"ok: {result.width}x{result.height} {result.model}")
            except InvgrayError as error:  # one bad photo does not stop the others
                statuses.append(f"error: {error}")
        return {"path": batch["path"], "output": np.array(outputs), "status": np.array(statuses)}


def photo_items(input_dir: Path) -> list[dict[str, str]]:
    """Every image below ``input_dir`` as {path, rel}, by invgray's own rules (its outputs skipped)."""
    from invgray_cli.io.inputs import OWN_OUTPUTS, expand_inputs

    expansion = expand_inputs([str(input_dir)], skip_suffixes=OWN_OUTPUTS)
    return [{"path": str(item.source), "rel": item.rel.as_posix()} for item in expansion.items]


def encode_folder(input_dir: Path, output_dir: Path, workers: int = 2, gpus_per_worker: float = 0.0,
                  batch_size: int = 8, model: str | None = None, weights: str | None = None,
                  force: bool = False) -> list[dict[str, str]]:
    """Encode every photo below ``input_dir`` into ``output_dir`` on the Ray cluster this process is
    connected to (ray.init() first); returns one {path, output, status} row per photo."""
    import ray

    items = photo_items(input_dir.resolve())  # absolute: actors may run in other working directories
    if not items:
        return []
    output_dir.mkdir(parents=True, exist_ok=True)
    device = "cuda" if gpus_per_worker else "cpu"
    dataset = ray.data.from_items(items).map_batches(
        EncodeBatch,
        fn_constructor_kwargs={"output_dir": str(output_dir.resolve()), "model": model, "weights": weights,
                               "device": device, "force": force},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=gpus_per_worker,
        batch_format="numpy",
    )
    return [{key: str(row[key]) for key in ("path", "output", "status")} for row in dataset.take_all()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--workers", type=int, default=2, help="Ray actors, each with its own codec (default 2).")
    parser.add_argument("--gpus-per-worker", type=float, default=None,
                        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0).")
    parser.add_argument("--batch-size", type=int, default=8, help="Photos per actor call.")
    parser.add_argument("--model", default=None, help="Shipped model name (default: invgray's default).")
    parser.add_argument("--weights", default=None, help="A weights file every node can read.")
    parser.add_argument("--force", action="store_true", help="Overwrite existing grays.")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray).")
    args = parser.parse_args(argv)
    if not args.input_dir.is_dir():
        parser.error(f"{args.input_dir} is not a folder")

    import ray

    ray.init(address=args.address, ignore_reinit_error=True)
    gpus = args.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    rows = encode_folder(args.input_dir, args.output_dir, args.workers, gpus, args.batch_size, args.model,
                         args.weights, args.force)
    failed = [row for row in rows if row["status"].startswith("error")]
    for row in failed:
        print(f"{row['path']}: {row['status']}", file=sys.stderr)
    print(f"{len(rows) - len(failed)} of {len(rows)} photos encoded into {args.output_dir}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
