"""The package's layers, read from its source with `ast`: every `import` and `from ... import` at any
depth (function bodies included), relative imports resolved.

- Command-line code lives in `llmlab/cli/`: no module outside it (and `llmlab/recipes/`, whose
  scripts are commands too) imports `llmlab.cli`.
- `llmlab/model/` is pure nn.Modules: it imports only `llmlab.config`, `llmlab.errors` and itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmlab"
MODEL_MAY_IMPORT = ("llmlab.model", "llmlab.config", "llmlab.errors")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """(line, name) for every import in a file (named `module`, default: from its path), relative
    imports resolved; `from a import b` yields a.b (b is a submodule or a name defined in a)."""
    name = module or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, target if alias.name == "*" else f"{target}.{alias.name}") for alias in node.names]
    return found


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def all_imports() -> list[tuple[str, str, int, str]]:
    """(module, file, line, imported) for every import of every module of the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        out += [(module_name(path), str(path.relative_to(PACKAGE.parent)), line, target)
                for line, target in imports(path)]
    return out


def test_the_walk_sees_every_kind_of_import(tmp_path):
    """What the rules below rely on: aliased, relative and function-level imports are all found."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os.path as p\nfrom . import writer\nfrom ..sources import x\n"
                     "def f():\n    if True:\n        from ...cli import common\n"
                     "class C:\n    def g(self):\n        import llmlab.cli.main\n")
    assert [t for _, t in imports(probe, "llmlab.data.tinyworld.probe")] == [
        "os.path", "llmlab.data.tinyworld.writer", "llmlab.data.sources.x", "llmlab.cli.common", "llmlab.cli.main"]
    # The real tree: eval/report.py imports its sections' modules inside functions.
    assert any(within(t, "llmlab.eval.bias_run") for _, t in imports(PACKAGE / "eval" / "report.py"))


def test_only_cli_and_recipes_import_the_cli():
    bad = [f"{file}:{line} imports {target}" for module, file, line, target in all_imports()
           if within(target, "llmlab.cli") and not within(module, "llmlab.cli", "llmlab.recipes")]
    assert not bad, "command-line code belongs in llmlab/cli/:\n" + "\n".join(bad)


def test_model_imports_nothing_above_it():
    bad = [f"{file}:{line} imports {target}" for module, file, line, target in all_imports()
           if within(module, "llmlab.model") and (target == "llmlab" or target.startswith("llmlab."))
           and not within(target, *MODEL_MAY_IMPORT)]
    assert not bad, "llmlab/model/ may import only " + ", ".join(MODEL_MAY_IMPORT) + ":\n" + "\n".join(bad)


def test_command_line_code_lives_in_cli():
    """click (command-line parsing) is used only in llmlab/cli/; no `*_cli.py` or `cli.py` elsewhere."""
    bad = [f"{file}:{line} imports {target}" for module, file, line, target in all_imports()
           if within(target, "click") and not within(module, "llmlab.cli")]
    stray = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
             if (p.stem == "cli" or p.stem.endswith("_cli")) and p.relative_to(PACKAGE).parts[0] != "cli"]
    assert not bad and not stray, "\n".join(bad + stray)
