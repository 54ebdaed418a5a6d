"""dvc.yaml declares what each stage depends on, so a code change never leaves stale results.

Each stage runs the CLI with a command; the modules it executes are cli.py, the package
modules (in the lifecycle subpackages) that command imports, and everything those import in
turn. The test derives that closure from the source and checks the stage lists every one of
them, and no more.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "{{ cookiecutter.package_name }}"
SOURCE = ROOT / "src" / PACKAGE
CLI = SOURCE / "cli.py"


def _executed(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except the bodies of `if TYPE_CHECKING:`, which never run."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            todo += node.orelse
            continue
        nodes.append(node)
        todo += ast.iter_child_nodes(node)
    return nodes


def _module_file(name: str) -> Path:
    return SOURCE / (name.replace(".", "/") + ".py")


def package_imports(tree: ast.AST) -> set[str]:
    """Package modules (dotted, below the package: `core.config`) imported anywhere in `tree`,
    at module level or inside functions. A subpackage's `__init__.py` holds only its docstring
    (test_subpackages_hold_no_code), so importing through it runs nothing a stage depends on."""
    found = set()
    for node in _executed(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE or node.module.startswith(PACKAGE + "."):
                base = node.module.removeprefix(PACKAGE).lstrip(".")
                for alias in node.names:
                    dotted = f"{base}.{alias.name}" if base else alias.name
                    found.add(dotted if _module_file(dotted).is_file() else base)
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.removeprefix(PACKAGE + ".")
                for alias in node.names
                if alias.name.startswith(PACKAGE + ".")
            }
    return {name for name in found if name and _module_file(name).is_file()}


def closure(roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(_module_file(name).read_text(encoding="utf-8"))
        todo += package_imports(tree) - seen
    return seen


def command_modules(command: str) -> set[str]:
    """cli.py, its module-level imports, `_run`'s, and those of the command's function."""
    tree = ast.parse(CLI.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            roots |= package_imports(ast.Module(body=[node], type_ignores=[]))
        if isinstance(node, ast.FunctionDef) and node.name in {command, "_run"}:
            roots |= package_imports(node)
    return closure(roots) | {"cli"}


def test_every_stage_depends_on_every_module_it_runs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert stages
    for name, stage in stages.items():
        command = stage["cmd"].split()[1]
        needed = {
            f"src/{PACKAGE}/{module.replace('.', '/')}.py" for module in command_modules(command)
        }
        declared = {dep for dep in stage.get("deps", []) if str(dep).startswith("src/")}
        missing = sorted(needed - declared)
        assert not missing, f"stage {name} runs {missing} but dvc.yaml does not list them"
        unused = sorted(declared - needed)
        assert not unused, f"stage {name} lists {unused}, which it does not run"


def test_closure_follows_imports_inside_functions():
    """The lazily imported modules count: `train` reaches core/models.py only inside functions."""
    assert "core.models" in command_modules("train")
    assert "promotion.tracking" in command_modules("evaluate")


def test_subpackages_hold_no_code():
    """Each subpackage's __init__.py is its docstring only: importing a module through it runs
    nothing else, so the closure above is every module a stage runs."""
    for init in SOURCE.glob("*/__init__.py"):
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), init


def test_small_stages_depend_on_few_modules():
    """Lifecycle layers keep a stage's deps to what it runs: editing a metric reruns only
    evaluate onwards, editing a model kind only train onwards, and ingest runs six modules
    (core/records.py among them: the report it writes is a record)."""
    assert len(command_modules("ingest")) <= 6, sorted(command_modules("ingest"))
    for early in ("ingest", "validate", "split"):
        assert not {"core.models", "core.metrics"} & command_modules(early), early
    assert "core.metrics" not in command_modules("train")
