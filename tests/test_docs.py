"""docs/plugins.md stays true: every hookspec is documented with its kind, and every code example runs."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import torch
from click.testing import CliRunner

import babyvlm
from babyvlm import registry
from babyvlm.cli import cli
from babyvlm.core import hookspecs
from babyvlm.core.kinds import KINDS

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
TEXT = DOC.read_text(encoding="utf-8")
HOOKS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, "babyvlm_spec"))
KIND_OF_HOOK = {hook: kind for kind, hook in KINDS.items()}
HOOK_HEADING = re.compile(r"^#{2,4} `(register_\w+)\(register\)`\s*$", re.MULTILINE)
CODE_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)



def hook_sections() -> dict[str, str]:
    """``{hook: text of its section}``, a section running to the next heading of the same or higher level."""
    sections = {}
    for match in HOOK_HEADING.finditer(TEXT):
        end = re.compile(r"^#{1,3} ", re.MULTILINE).search(TEXT, match.end())
        sections[match.group(1)] = TEXT[match.end(): end.start() if end else len(TEXT)]
    return sections


def python_blocks(text: str) -> list[str]:
    return [code for lang, code in CODE_BLOCK.findall(text) if lang == "python"]


def as_module(source: str, name: str) -> ModuleType:
    module = ModuleType(name)
    exec(compile(source, f"<docs/plugins.md:{name}>", "exec"), module.__dict__)
    return module


def test_hookspecs_are_found():
    assert len(HOOKS) == len(KINDS) and set(HOOKS) == set(KINDS.values())


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_heading_with_its_signature_and_kind(hook):
    sections = hook_sections()
    assert hook in sections, f"docs/plugins.md has no '### `{hook}(register)`' heading"
    assert f"**`{KIND_OF_HOOK[hook]}`**" in sections[hook], f"section {hook} does not name its kind"
    assert python_blocks(sections[hook]), f"section {hook} has no python example"


def test_no_heading_documents_a_hook_that_does_not_exist():
    assert set(hook_sections()) <= set(HOOKS)


def test_discovery_is_explained():
    for needle in ("entry point", "**`babyvlm`**", "BABYVLM_LOAD_PLUGINS", "register_plugin",
                   "registry.reset()", "broken", "Did you mean"):
        assert needle in TEXT, needle


def test_every_python_block_compiles():
    for index, code in enumerate(python_blocks(TEXT)):
        compile(code, f"<docs/plugins.md python block {index}>", "exec")


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_examples_register_their_kind(hook, fresh_registry):
    kind = KIND_OF_HOOK[hook]
    for index, code in enumerate(python_blocks(hook_sections()[hook])):
        plugin = registry.register_plugin(as_module(code, f"docs_{hook}_{index}"), f"docs_{hook}_{index}")
        assert plugin.status == "ok", plugin.error
        assert list(plugin.components) == [kind]


def test_in_process_example_runs(fresh_registry):
    section = TEXT[TEXT.index("6. **In-process plugins.**"):TEXT.index("Inspect what is loaded")]
    (code,) = python_blocks(section)
    namespace = as_module(code, "docs_in_process").__dict__
    assert torch.equal(namespace["connector"](torch.ones(3)), torch.full((3,), 2.0))
    assert "doubler" not in registry.names("connector")  # the example resets the registry itself


def example_files() -> dict[str, str]:
    return dict(FILE_BLOCK.findall(TEXT))


def test_example_package_declares_its_entry_point():
    files = example_files()
    project = tomllib.loads(files["pyproject.toml"])
    entry_points = project["project"]["entry-points"]["babyvlm"]
    assert entry_points == {"babyvlm_gated_connector": "babyvlm_gated_connector"}
    assert project["tool"]["setuptools"]["py-modules"] == ["babyvlm_gated_connector"]
    assert "babyvlm_gated_connector.py" in files


def test_example_package_module_works(tmp_path, fresh_registry):
    path = tmp_path / "babyvlm_gated_connector.py"
    path.write_text(example_files()["babyvlm_gated_connector.py"])
    spec = importlib.util.spec_from_file_location("babyvlm_gated_connector", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = registry.register_plugin(module, "babyvlm_gated_connector")
    assert plugin.status == "ok" and plugin.components == {"command": ["gated-info"], "connector": ["gated_linear"]}
    connector = babyvlm.build("connector", dict(type="gated_linear", in_features=8, out_features=16))
    assert connector(torch.randn(2, 3, 8)).shape == (2, 3, 16)
    result = CliRunner().invoke(cli, ["gated-info", "--in-features", "8", "--out-features", "16"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"gated_linear 8->16: {2 * (8 * 16 + 16)} parameters"


@pytest.mark.filterwarnings("ignore:BPE corpus too small")
def test_template_example_encodes(fresh_registry):
    (code,) = python_blocks(hook_sections()["register_templates"])
    registry.register_plugin(as_module(code, "docs_template"), "docs_template")
    tokenizer = babyvlm.build("tokenizer", dict(type="bpe", corpus=["where is the ball"] * 3))
    template = babyvlm.build("template", "child_v1")
    conversation = [{"from": "human", "value": "where is it?"}, {"from": "gpt", "value": "the ball"}]
    encoded = template.encode(conversation, tokenizer)
    answer = tokenizer.encode(" the ball") + [tokenizer.eos_id]
    assert encoded.input_ids == [tokenizer.sos_id] + tokenizer.encode(" ADULT: where is it? CHILD:") + answer
    assert encoded.labels[-len(answer):] == answer and encoded.num_supervised == len(answer)
