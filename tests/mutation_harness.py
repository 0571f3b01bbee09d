"""Run a chapter's checks against a deliberately broken ``diffnotes`` (mutation testing).

A chapter's check is only worth something if it fails when the function it checks is wrong.
A :class:`Mutant` names a chapter, the code cells (by their nbformat cell ``id``) that compute
and assert one check, a function of the package, and a broken version of it (a flipped sign, a
square root added or dropped, an index off by one). :func:`run_cells` executes those cells,
in notebook order, in a fresh namespace with the package patched; the mutant is *killed* when
the cells raise ``AssertionError`` (a failed ``assert`` or a row of ``course.CheckTable``).

The cells run in-process, in fast mode, with matplotlib's Agg backend and ``plt.show`` closing
the figures; IPython magics (``%matplotlib``) are skipped. A baseline run without the mutation
must pass, or the mutant proves nothing: :func:`outcome` does both.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import Callable

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One mutation of one package function, and the chapter cells whose check must catch it.

    ``target`` is ``"module.attr"`` inside ``diffnotes`` (e.g. ``"samplers.ddim_sigma"``);
    ``mutate`` receives the original function and returns the broken one.
    """

    name: str
    notebook: str
    cells: tuple[str, ...]
    target: str
    mutate: Callable
    what: str = ""


def _cell_sources(notebook: str, cell_ids) -> list[str]:
    path = NOTEBOOKS / f"{notebook}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    by_id = {c.get("id"): c for c in cells}
    missing = [i for i in cell_ids if i not in by_id]
    if missing:
        raise KeyError(f"{path.name} has no cell with id {missing}: update the mutant's cell list")
    wanted = set(cell_ids)
    out = []
    for c in cells:  # notebook order, whatever the order of cell_ids
        if c.get("id") in wanted:
            if c["cell_type"] != "code":
                raise ValueError(f"{path.name} cell {c.get('id')} is {c['cell_type']}, not code")
            src = "".join(c["source"])
            out.append(src)  # IPython magics are dropped by run_sources
    return out


@contextlib.contextmanager
def _patched(target: str | None, mutate: Callable | None):
    if target is None:
        yield
        return
    mod_name, attr = target.rsplit(".", 1)
    module = importlib.import_module(f"diffnotes.{mod_name}")
    original = getattr(module, attr)
    setattr(module, attr, mutate(original))
    try:
        yield
    finally:
        setattr(module, attr, original)


def run_cells(notebook: str, cell_ids, *, target: str | None = None, mutate: Callable | None = None) -> dict:
    """Execute the chosen code cells of ``notebooks/<notebook>.ipynb``; return their namespace."""
    return run_sources(notebook, _cell_sources(notebook, cell_ids), target=target, mutate=mutate)


def run_sources(notebook: str, sources: list[str], *, target: str | None = None,
                mutate: Callable | None = None) -> dict:
    """Execute code (cell sources) as a chapter's cells run in :func:`run_cells`; return the namespace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    os.environ["DIFFNOTES_FAST"] = "1"
    # The chapters' checks hold with the network in bf16 or float32 (make test's nbval runs float32, which is
    # slower); the mutation runs compare no stored output, so they take the default, bf16 where the CPU has it.
    bf16_setting = os.environ.pop("DIFFNOTES_BF16", None)
    sources = ["\n".join(l for l in s.splitlines() if not l.lstrip().startswith(("%", "!"))) for s in sources]
    ns: dict = {"__name__": "__chapter__"}
    show, threads = plt.show, torch.get_num_threads()
    cwd = os.getcwd()
    plt.show = lambda *a, **k: plt.close("all")
    try:
        os.chdir(NOTEBOOKS)
        with _patched(target, mutate), contextlib.redirect_stdout(open(os.devnull, "w")):
            for src in sources:
                exec(compile(src, f"<{notebook}>", "exec"), ns)
    finally:
        plt.show = show
        plt.close("all")
        os.chdir(cwd)
        torch.set_num_threads(threads)
        if bf16_setting is not None:
            os.environ["DIFFNOTES_BF16"] = bf16_setting
    return ns


def outcome(m: Mutant) -> str:
    """'killed' if the mutated run fails its check, 'survived' if it passes."""
    try:
        run_cells(m.notebook, m.cells, target=m.target, mutate=m.mutate)
    except AssertionError:
        return "killed"
    return "survived"
