"""The exercises of the lessons (issue I.7): every solution passes its grader, every stub of the
student copy fails its grader with its own hint, and ``make exercises`` writes the copies."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffnotes import course
from diffnotes.exercises import BEGIN, END, find_exercises, stub_source, student_copy
from mutation_harness import run_sources

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
EXERCISES = [(p.stem, ex) for p in LESSONS for ex in find_exercises(json.loads(p.read_text()))]


def _sources(stem: str, ids) -> list[str]:
    cells = {c.get("id"): c for c in json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]}
    return ["".join(cells[i]["source"]) for i in ids]


@pytest.mark.parametrize("stem,ex", EXERCISES, ids=[f"{s}:{e.number}" for s, e in EXERCISES])
def test_solution_passes_its_grader(stem, ex):
    run_sources(stem, _sources(stem, (*ex.needs, ex.solution, ex.grader)))


@pytest.mark.parametrize("stem,ex", EXERCISES, ids=[f"{s}:{e.number}" for s, e in EXERCISES])
def test_stub_fails_its_grader_with_its_hint(stem, ex):
    needs, (solution,), (grader,) = _sources(stem, ex.needs), _sources(stem, [ex.solution]), _sources(stem, [ex.grader])
    with pytest.raises(NotImplementedError) as err:
        run_sources(stem, [*needs, stub_source(solution, ex.number, ex.hint), grader])
    assert str(err.value) == f"Exercise {ex.number}: {ex.hint}"


def _lesson(solution_body: str, grader: str, hint: str = "square the argument") -> dict:
    cell = lambda cid, kind, src, **meta: {"id": cid, "cell_type": kind, "metadata": meta, "source": src,
                                           **({"outputs": [], "execution_count": None} if kind == "code" else {})}
    return {"cells": [
        cell("a", "code", "import math"),
        cell("b", "markdown", "### Exercise 1"),
        cell("c", "code", f"def f(x):\n    \"\"\"x squared.\"\"\"\n    {BEGIN}\n{solution_body}\n    {END}",
             tags=["solution"], exercise={"number": 1, "hint": hint, "needs": ["a"]}, jupyter={"source_hidden": True}),
        cell("d", "code", grader, tags=["grader"], exercise={"number": 1}),
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


GRADER = "course.grade(1, lambda t: t.check('f(3)', f(3), 9.0, atol=1e-12), hint='square the argument')"


def _run(nb, ids):
    ns = {"course": course}
    for c in nb["cells"]:
        if c["id"] in ids:
            exec("".join(c["source"]), ns)
    return ns


def test_grade_passes_a_right_answer_and_fails_a_wrong_one_with_the_hint():
    ok = _lesson("    return x ** 2", GRADER)
    _run(ok, {"a", "c", "d"})
    wrong = _lesson("    return 2 * x", GRADER)
    with pytest.raises(course.ExerciseNotPassed, match=r"Exercise 1 is not solved yet: f\(3\): 6 vs 9.*Hint: square"):
        _run(wrong, {"a", "c", "d"})


def test_grade_refuses_a_grader_that_checks_nothing():
    with pytest.raises(ValueError, match="recorded no check"):
        course.grade(1, lambda t: None, hint="h")
    with pytest.raises(ValueError, match="hint"):
        course.grade(1, lambda t: t.check("x", 1, 1), hint=" ")


def test_student_copy_stubs_the_block_keeps_the_signature_and_clears_outputs():
    nb = _lesson("    return x ** 2", GRADER)
    nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "9"}]
    copy_, n = student_copy(nb)
    src = copy_["cells"][2]["source"]
    assert n == 1 and "return x ** 2" not in src and BEGIN not in src and END not in src
    assert src.startswith("def f(x):\n    \"\"\"x squared.\"\"\"") and copy_["cells"][2]["outputs"] == []
    assert "jupyter" not in copy_["cells"][2]["metadata"]          # the stub is shown, not collapsed
    with pytest.raises(NotImplementedError, match="^Exercise 1: square the argument$"):
        _run(copy_, {"a", "c", "d"})
    assert nb["cells"][2]["source"].count("return x ** 2") == 1    # the lesson itself is untouched


@pytest.mark.parametrize("mutate,message", [
    (lambda nb: nb["cells"].pop(3), "same numbers"),
    (lambda nb: nb["cells"][2]["metadata"]["exercise"].update(hint=""), "needs a hint"),
    (lambda nb: nb["cells"][2].update(source="def f(x):\n    return x ** 2"), "BEGIN SOLUTION"),
    (lambda nb: nb["cells"][2]["metadata"]["exercise"].update(needs=["d"]), "not earlier cells"),
    (lambda nb: [c["metadata"]["exercise"].update(number=2) for c in nb["cells"][2:]], r"numbered 1, 2, 3"),
])
def test_malformed_exercises_are_refused_with_the_cell_named(mutate, message):
    nb = _lesson("    return x ** 2", GRADER)
    mutate(nb)
    with pytest.raises(ValueError, match=message):
        find_exercises(nb)


def test_make_copies_writes_one_copy_per_lesson_with_exercises(tmp_path):
    lesson = tmp_path / "01_demo.ipynb"
    lesson.write_text(json.dumps(_lesson("    return x ** 2", GRADER)))
    out = tmp_path / "copies"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "exercises" / "make_copies.py"), "--out", str(out),
                          str(lesson)], capture_output=True, text=True, check=True)
    assert "1 exercise(s)" in run.stdout
    copied = json.loads((out / "01_demo.ipynb").read_text())
    assert "NotImplementedError" in copied["cells"][2]["source"]
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "exercises" / "make_copies.py"), "--out", str(out),
                          str(tmp_path / "missing.ipynb")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such notebook" in bad.stderr
