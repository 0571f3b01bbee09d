"""The slide decks' budget (issue I.6): code hidden unless tagged, and the per-lesson slide figures."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

SLIDES = Path(__file__).resolve().parent.parent / "scripts" / "slides"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"slides_{name}", SLIDES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nb():
    nb = nbformat.v4.new_notebook()
    md = lambda text, kind: nbformat.v4.new_markdown_cell(text, metadata={"slideshow": {"slide_type": kind}})
    nb.cells = [
        md("# Title with $x_t = \\sqrt{\\bar\\alpha_t} x_0$ math", "slide"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["slide-code"]}),
        nbformat.v4.new_code_cell("y = 2"),
        md("one two three `code span` [link](http://example.org/a-b-c)", "fragment"),
        md("hidden words here", "skip"),
        md("four five", "subslide"),
    ]
    return nb


def test_stats_count_slides_words_and_shown_code():
    stats = _load("stats")
    slides = stats.slides(_nb())
    assert [s["words"] for s in slides] == [3 + 3 + 1, 2]     # "Title with math" + "one two three" + "link"
    assert [s["code"] for s in slides] == [1, 0]
    assert stats.prose_words("a $b+c$ and $$d$$ `e` <b>f</b>") == 3   # a, and, f


def test_decks_hide_code_unless_tagged():
    pytest.importorskip("nbconvert")
    decks = _load("build_decks")
    nb = _nb()
    assert decks.hide_code(nb) == 1
    shown, hidden = nb.cells[1], nb.cells[2]
    assert "transient" not in shown.metadata and hidden.metadata["transient"]["remove_source"] is True
