"""What the README's SVG figure scripts share: a text element, and the command that reads
`invgray eval --json` reports and writes the figure."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable


def text(x: float, y: float, body: str, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" {extra}>{body}</text>'


def main(figure: Callable[[list[dict]], str], description: str, reports_help: str) -> None:
    """``SCRIPT REPORT.json... -o FIGURE.svg``: one `invgray eval --json` report per model."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("reports", nargs="+", type=Path, help=reports_help)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.reports]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(figure(reports))
    print(f"wrote {args.out}")
