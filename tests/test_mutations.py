"""Mutation score of the chapters' checks (issue F.5).

Each ``tests/mutants_*.py`` module lists :class:`mutation_harness.Mutant` objects: a package
function broken on purpose and the chapter cells whose check must catch it. For every mutant
the cells are run twice: as shipped (the check must pass) and with the function broken (the
check must fail). The last test prints the score, killed / total, and requires every mutant to
be killed.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mutation_harness import Mutant, outcome, run_cells

_MODULES = sorted(p.stem for p in Path(__file__).parent.glob("mutants_*.py"))
MUTANTS: list[Mutant] = [m for name in _MODULES for m in importlib.import_module(name).MUTANTS]
_RESULTS: dict[str, str] = {}


def test_mutant_names_are_unique():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert MUTANTS, "no mutants found in tests/mutants_*.py"


_GROUPS = sorted({(m.notebook, m.cells) for m in MUTANTS})


@pytest.mark.parametrize("notebook,cells", _GROUPS, ids=[f"{nb}:{'+'.join(c)}" for nb, c in _GROUPS])
def test_unmutated_cells_pass(notebook, cells):
    run_cells(notebook, cells)  # raises if the chapter's own check fails on the real package


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_killed(mutant):
    result = outcome(mutant)
    _RESULTS[mutant.name] = result
    assert result == "killed", (
        f"{mutant.name}: {mutant.what or mutant.target} survived the check in "
        f"{mutant.notebook} cells {mutant.cells}"
    )


def test_mutation_score(capsys):
    if len(_RESULTS) < len(MUTANTS):
        pytest.skip("run with the mutant tests to get the score")
    killed = sum(r == "killed" for r in _RESULTS.values())
    with capsys.disabled():
        print(f"\nmutation score of the chapters' checks: {killed}/{len(MUTANTS)} killed")
        for name, r in sorted(_RESULTS.items()):
            print(f"  {r:8s} {name}")
    assert killed == len(MUTANTS)
