"""Exercises in the lessons, and the student copies that ``make exercises`` writes.

A lesson's exercise is three kinds of cell, marked by cell tags and one metadata entry:

* the question (Markdown, ``### Exercise N ...``);
* the **solution** (code, tag ``solution``, metadata ``"exercise": {"number": N, "hint": "...",
  "needs": [cell ids]}``, input collapsed in JupyterLab). The lines to be written by the reader sit
  between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the rest of the cell (a ``def`` line, a
  docstring) stays in the student copy. ``needs`` lists the earlier cells (usually the imports) that
  the exercise uses, so that a test can run it alone;
* the **grader** (code, tag ``grader``, the same ``"exercise": {"number": N}``), which calls
  :func:`diffnotes.course.grade`.

:func:`student_copy` replaces each solution block by ``raise NotImplementedError("Exercise N: hint")``
and clears the outputs of the exercise cells, so a reader who runs the grader before solving sees the
hint, and one whose answer is wrong sees the failed checks and the hint.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"

__all__ = ["Exercise", "find_exercises", "stub_source", "student_copy"]


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson: its number, hint, and the ids of its cells."""

    number: int
    hint: str
    solution: str          # cell id of the solution
    grader: str            # cell id of the grader
    needs: tuple[str, ...]  # cell ids run before the solution (imports, data)


def _meta(cell) -> dict | None:
    ex = cell.get("metadata", {}).get("exercise")
    return ex if isinstance(ex, dict) else None


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def find_exercises(nb: dict) -> list[Exercise]:
    """The exercises of a notebook (a dict as ``json.load`` or nbformat gives it), in order.

    Raises ``ValueError`` naming the cell when an exercise is malformed: a solution without a
    grader, a grader without a solution, numbers not 1, 2, 3, ..., a solution without its
    ``# BEGIN SOLUTION`` / ``# END SOLUTION`` block, an empty hint, or a ``needs`` id that is not an
    earlier cell.
    """
    cells = nb["cells"]
    position = {c.get("id"): i for i, c in enumerate(cells)}
    solutions, graders = {}, {}
    for i, cell in enumerate(cells):
        tags, meta = _tags(cell), _meta(cell)
        kind = "solution" if "solution" in tags else "grader" if "grader" in tags else None
        if kind is None:
            continue
        cid = cell.get("id")
        if cell.get("cell_type") != "code" or meta is None or not isinstance(meta.get("number"), int):
            raise ValueError(f"cell {cid}: a {kind} cell must be code with metadata "
                             '"exercise": {"number": N, ...}')
        target = solutions if kind == "solution" else graders
        if meta["number"] in target:
            raise ValueError(f"cell {cid}: a second {kind} for exercise {meta['number']}")
        target[meta["number"]] = (i, cell)
    if sorted(solutions) != sorted(graders):
        raise ValueError(f"exercises with a solution {sorted(solutions)} and with a grader {sorted(graders)} "
                         "must be the same numbers")
    numbers = sorted(solutions)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"exercises must be numbered 1, 2, 3, ...; found {numbers}")
    out = []
    for n in numbers:
        (i_s, sol), (i_g, grader) = solutions[n], graders[n]
        meta = _meta(sol)
        hint = meta.get("hint", "")
        if not isinstance(hint, str) or not hint.strip():
            raise ValueError(f"cell {sol.get('id')}: exercise {n} needs a hint (metadata exercise.hint)")
        src = _source(sol)
        if BEGIN not in src or END not in src or src.index(BEGIN) > src.index(END):
            raise ValueError(f"cell {sol.get('id')}: exercise {n}'s solution needs a '{BEGIN}' ... '{END}' block")
        if i_g < i_s:
            raise ValueError(f"cell {grader.get('id')}: exercise {n}'s grader comes before its solution")
        needs = tuple(meta.get("needs", ()))
        bad = [c for c in needs if c not in position or position[c] >= i_s]
        if bad:
            raise ValueError(f"cell {sol.get('id')}: exercise {n} needs {bad}, which are not earlier cells")
        out.append(Exercise(n, hint.strip(), sol.get("id"), grader.get("id"), needs))
    return out


def stub_source(source: str, number: int, hint: str) -> str:
    """``source`` with every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block replaced by
    ``raise NotImplementedError("Exercise N: hint")`` at the block's indentation."""
    lines, out, inside = source.splitlines(), [], False
    message = repr(f"Exercise {number}: {hint}")
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"exercise {number}: '{BEGIN}' inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# your code here")
            out.append(f"{indent}raise NotImplementedError({message})")
        elif stripped == END:
            if not inside:
                raise ValueError(f"exercise {number}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"exercise {number}: '{BEGIN}' without '{END}'")
    return "\n".join(out)


def student_copy(nb: dict) -> tuple[dict, int]:
    """A copy of ``nb`` in which each solution is a stub (:func:`stub_source`), shown (not collapsed),
    and the outputs of solution and grader cells are cleared. Returns (notebook, number of exercises)."""
    exercises = find_exercises(nb)
    nb = copy.deepcopy(nb)
    by_id = {c.get("id"): c for c in nb["cells"]}
    for ex in exercises:
        sol, grader = by_id[ex.solution], by_id[ex.grader]
        sol["source"] = stub_source(_source(sol), ex.number, ex.hint)
        sol["metadata"].pop("jupyter", None)
        for cell in (sol, grader):
            cell["outputs"], cell["execution_count"] = [], None
    return nb, len(exercises)

