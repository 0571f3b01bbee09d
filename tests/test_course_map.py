"""The README's course map is written from the lessons' title cells and must be up to date (issue I.9)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("course_map", ROOT / "scripts" / "course" / "course_map.py")
course_map = importlib.util.module_from_spec(spec)
spec.loader.exec_module(course_map)


def test_readme_course_map_is_current():
    assert course_map.main(["--check"]) == 0, "run: python scripts/course/course_map.py --write"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")), ids=lambda p: p.stem)
def test_every_lesson_states_objectives_prerequisites_and_time(path):
    entry = course_map.lesson_entry(path)
    assert 3 <= len(entry["objectives"]) <= 5 and entry["assumes"] and entry["time"]
    first = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert "90-minute lecture path" in first


def test_a_title_cell_without_objectives_is_refused(tmp_path):
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": "# Chapter 0"}]}))
    with pytest.raises(ValueError, match="After this lesson you can"):
        course_map.lesson_entry(tmp_path / "nb.ipynb")
