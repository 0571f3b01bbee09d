"""Cells of a notebook written from Python (the lesson and appendix builders of scripts/course): markdown and
code cells with fixed ids and slide metadata, validated and written as the repository keeps notebooks."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat


class Notebook:
    """Collects cells in order; :meth:`write` validates the notebook and writes it (sources only: execute it
    afterwards with ``make nbval``'s settings)."""

    def __init__(self):
        self.cells = []

    def md(self, cid, src, slide="subslide"):
        c = nbformat.v4.new_markdown_cell(src.strip("\n"))
        c["id"] = cid
        c["metadata"] = {"slideshow": {"slide_type": slide}}
        self.cells.append(c)

    def code(self, cid, src, slide="-", tags=None, exercise=None, hidden=False):
        c = nbformat.v4.new_code_cell(src.strip("\n"))
        c["id"] = cid
        meta = {"slideshow": {"slide_type": slide}}
        if tags:
            meta["tags"] = tags
        if exercise:
            meta["exercise"] = exercise
        if hidden:
            meta["jupyter"] = {"source_hidden": True}
        c["metadata"] = meta
        self.cells.append(c)

    def write(self, out: Path) -> Path:
        nb = nbformat.v4.new_notebook()
        nb["cells"] = self.cells
        nb["metadata"] = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        nbformat.validate(nb)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(nb, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(out, len(self.cells), "cells")
        return out
