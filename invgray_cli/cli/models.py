"""Stage cli: ``invgray models``, every shipped weights file of the zoo (``models/zoo.py``) with its
role and size, as text or as the one JSON envelope."""
from __future__ import annotations

import json
from typing import Any

import click

from invgray_cli.cli.options import json_option


def zoo_record(entry: Any, default: bool) -> dict[str, Any]:
    """One zoo entry for `models --json`: its fields, its role's key, and its file's size (None: missing)."""
    from dataclasses import fields

    from invgray_cli.models.zoo import weights_dir

    path = weights_dir() / entry.file
    record = {field.name: getattr(entry, field.name) for field in fields(entry)}
    return {**record, "role": entry.role.key, "default": default, "bytes": path.stat().st_size if path.is_file() else None}


def zoo_lines(entry: Any, record: dict[str, Any], width: int) -> list[str]:
    """One zoo entry for people: name, role and size; what it is; its file and facts."""
    import textwrap

    role = entry.role.words + (f" of {entry.serves}" if entry.serves else "  (default)" if record["default"] else "")
    size = "file missing" if record["bytes"] is None else f"{record['bytes'] / 1e6:.2f} MB"
    facts = [size, f"file {record['file']}", f"sha256 {record['sha256'][:12]}", f"card {record['card']}"]
    if record["divisibility"] is not None:
        facts += [f"divisibility {record['divisibility']}", f"receptive field {record['receptive_field']} px"]
    indent = {"initial_indent": "  ", "subsequent_indent": "  "}
    return ["", textwrap.fill(f"{record['name']}  {role}", width, subsequent_indent="  "),
            textwrap.fill(record["description"], width, **indent), textwrap.fill("  ".join(facts), width, **indent)]


@click.command("models")
@json_option
def models_command(as_json: bool) -> None:
    """List every shipped weights file: codec models (the first is the default), the companions
    each model's decode uses (code detector, edge decoder, JPEG decoder, frame judge) and the
    colourisers, with their role and size."""
    import shutil

    from invgray_cli.models.zoo import CODEC, ROLES, default_entry, entries, weights_dir

    defaults = {role: default_entry(role) for role in ROLES}  # a companion is no one's choice, so no default
    records = [zoo_record(entry, entry.serves is None and defaults[entry.role] is entry) for entry in entries()]
    if as_json:
        from invgray_cli.report import envelope, model_facts

        model = defaults[CODEC]
        results = {"weights_dir": str(weights_dir()), "entries": records}
        click.echo(json.dumps(envelope("invgray-models", "every shipped weights file: codec models, their "
                                       "companions and colourisers", model_facts(model and model.name,
                                       model and model.sha256), None, results), indent=2))
        return
    if not records:
        click.echo(f"no shipped weights (looked in {weights_dir()}); pass --weights PATH to encode/decode")
        return
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    click.echo(f"shipped weights in {weights_dir()}:")
    for entry, record in zip(entries(), records):
        click.echo("\n".join(zoo_lines(entry, record, width)))
