"""``babyvlm/core`` knows no plugin: it imports no plugin module, runs no command, and names no bundled
component, command or CLI flag (a plugin renamed or removed cannot break core)."""

from __future__ import annotations

import ast
from pathlib import Path

from babyvlm import registry

CORE = Path(__file__).resolve().parent.parent / "babyvlm" / "core"
# Words of core's own vocabulary that a bundled component or command happens to share: config sections
# and keys ("data", "model", "corpus"), the training split ("train"), "none" (no initial weights), the
# "random" reason a recording is held out, and pluggy's project name "babyvlm".
OWN_WORDS = {"data", "model", "corpus", "train", "none", "random", "babyvlm"}


def string_constants() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        found += [(path.name, node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]
    return found


def test_core_imports_no_plugin_module():
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            assert not any(m.startswith("babyvlm.plugins") for m in modules), f"{path.name}:{node.lineno} imports {modules}"


def test_core_names_no_bundled_component_command_or_flag():
    bundled = {name: kind for kind, table in registry.components().items() for name in table}
    for file, line, value in string_constants():
        assert value not in bundled or value in OWN_WORDS, f"{file}:{line} names the {bundled[value]} {value!r}"
        assert not value.startswith("--"), f"{file}:{line} names the CLI flag {value!r}"
        assert "babyvlm.plugins" not in value, f"{file}:{line} names a plugin module"


def test_core_looks_up_no_command():
    for file, line, value in string_constants():
        assert value != "command" or file == "kinds.py", f"{file}:{line} looks up a command"
