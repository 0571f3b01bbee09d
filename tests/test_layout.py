"""The package's layout rules (CONTRIBUTING, "Layout"): each checked by reading the source, so a change that breaks
one fails here with the file and line to fix."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffnotes"
MAX_LINES = 700


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "pretrained" not in p.parts)


def _scripts():
    return sorted((ROOT / "scripts").rglob("*.py"))


def test_no_module_is_over_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (one idea each, at most {MAX_LINES} lines): {long}"


def _private_imports(path: Path):
    """``from <package module> import _name`` in ``path``: a private name of another module."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("diffnotes")):
            for alias in node.names:
                if alias.name.startswith("_") and alias.name != "__version__":
                    yield node.lineno, node.module, alias.name


def test_no_module_imports_a_private_name_of_another():
    found = [f"{p.relative_to(ROOT)}:{line} from {mod} import {name}"
             for p in _modules() + _scripts() for line, mod, name in _private_imports(p)]
    assert not found, "make what another module needs public in its home: " + "; ".join(found)


def test_scripts_import_the_package_not_the_command_line_and_leave_sys_path_alone():
    bad = []
    for p in _scripts():
        text = p.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module == "diffnotes.cli" or (node.module == "diffnotes" and any(a.name == "cli" for a in node.names))):
                bad.append(f"{p.relative_to(ROOT)}:{node.lineno} imports diffnotes.cli")
            if isinstance(node, ast.Import) and any(a.name == "diffnotes.cli" for a in node.names):
                bad.append(f"{p.relative_to(ROOT)}:{node.lineno} imports diffnotes.cli")
        for i, line in enumerate(text.splitlines(), 1):
            if re.search(r"\bsys\.path\b", line):
                bad.append(f"{p.relative_to(ROOT)}:{i} touches sys.path")
    assert not bad, bad


def _public_modules():
    names = set()
    for p in PACKAGE.iterdir():
        if p.name.startswith("_") or p.name == "pretrained":
            continue
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file()):
            names.add(p.stem)
    return names


def test_the_readme_and_the_package_docstring_list_every_module():
    readme = (ROOT / "README.md").read_text()
    init = (PACKAGE / "__init__.py").read_text()
    missing_readme = sorted(m for m in _public_modules() if not re.search(rf"(?<![\w.]){m}(\.py|/)", readme))
    missing_init = sorted(m for m in _public_modules() if f":mod:`diffnotes.{m}`" not in init)
    assert not missing_readme, f"README's module list lacks {missing_readme}"
    assert not missing_init, f"diffnotes/__init__.py's docstring lacks {missing_init}"


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_every_module_imports_on_its_own(name):
    """Each module imports cleanly in a fresh namespace (no hidden circular import)."""
    import importlib

    importlib.import_module(f"diffnotes.{name}")
