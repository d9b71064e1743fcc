"""The package's layers: nothing imports upward (ARCHITECTURE.md), lazy imports inside functions included."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "invgray_cli"
BASE = {"errors", "devices", "untrusted", "metrics", "report", "colour"}
# a module may import modules of its own rank or below
RANKS = {"base": 0, "io": 1, "models": 2, "codec": 3, "colorize": 4, "codec decision": 5, "api": 6,
         "eval": 7, "bench": 7, "train": 7, "cli": 8}
DECISION = {"codec.decode", "codec.files", "codec.model_choice"}  # codec's decision, above colorize


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts[0] in BASE:
        return "base"
    return "codec decision" if ".".join(parts[:2]) in DECISION else parts[0]


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        found += [(node.lineno, name) for name in names if name.startswith("invgray_cli")]
    return found


def test_nothing_imports_upward():
    upward, checked = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        if module in ("invgray_cli", "invgray_cli.__main__"):  # the package's lazy facade and entry point
            continue
        for line, target in imports(path):
            checked += 1
            if RANKS[layer(target)] > RANKS[layer(module)]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {layer(module)} imports {target}")
    assert checked > 200 and not upward, "\n".join(upward)
