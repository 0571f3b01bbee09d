"""Offline slide decks: one reveal.js HTML deck per chapter, viewable with no network (`make slides`).

    python scripts/slides/build_decks.py [--out slides] [notebooks/03_ddim.ipynb ...]

Writes ``OUT/NN_name.html`` for each chapter and one shared ``OUT/_assets/`` folder with the files
the decks load, copied from installed pip packages (the ``slides`` extra of pyproject.toml):

* reveal.js 5 from ``sphinx-revealjs`` (``sphinx_revealjs/_static/revealjs``);
* MathJax 2.7 from ``jupyter-server-mathjax`` (``jupyter_server_mathjax/static``).

nbconvert's own reveal template loads reveal.js, RequireJS, jQuery, Mermaid, MathJax and the
widget manager from CDNs; the template in ``templates/offline`` loads only the two local copies.
On a slide a code cell shows its output only; its input is shown when the cell carries the tag
``slide-code`` (the code a lecturer wants on the board). ``scripts/slides/stats.py`` prints, per
lesson, the slides, the words per slide and the code cells shown.
Widgets cannot run without a kernel, so each explorer's output is replaced by its default view,
read from the widget state that the executed notebook saved: the figure (the ``Image`` model's PNG)
and the text line under the controls. Hand out the whole OUT folder (decks + ``_assets``).
"""
from __future__ import annotations

import argparse
import base64
import copy
import html
import re
import shutil
import sys
from pathlib import Path

import nbformat

from diffnotes.course import SLIDE_CODE_TAG

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


def asset_sources() -> dict[str, Path]:
    """Folders of installed packages that hold reveal.js and MathJax; a clear error if one is missing."""
    found = {}
    for name, module, sub, probe in (("reveal", "sphinx_revealjs", "_static/revealjs", "dist/reveal.js"),
                                     ("mathjax", "jupyter_server_mathjax", "static", "MathJax.js")):
        try:
            mod = __import__(module)
        except ImportError:
            sys.exit(f"build_decks: {module} is not installed; run `make slides` (or "
                     f"pip install -e '.[slides]') to get the local {name} files")
        folder = Path(mod.__file__).parent / sub
        if not (folder / probe).is_file():
            sys.exit(f"build_decks: {folder / probe} not found in the installed {module}")
        found[name] = folder
    return found


def copy_assets(out: Path) -> None:
    """``out/_assets/{reveal,mathjax}`` from the installed packages (skipped when already there)."""
    for name, src in asset_sources().items():
        dest = out / "_assets" / name
        if not dest.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.map", "*.py", "__pycache__"))


def _children(state: dict, model_id: str):
    """Depth-first walk over a saved widget tree, yielding (model_id, model) pairs."""
    model = state.get(model_id)
    if model is None:
        return
    yield model_id, model
    for ref in model.get("state", {}).get("children", []):
        yield from _children(state, ref.removeprefix("IPY_MODEL_"))


def static_view(state: dict, model_id: str) -> dict | None:
    """The default view of a saved explorer as output data (PNG + text), or ``None`` if not saved."""
    png, lines = None, []
    for _, model in _children(state, model_id):
        name, st = model.get("model_name"), model.get("state", {})
        if name == "ImageModel" and png is None:
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"] and buf.get("data"):
                    png = buf["data"] if buf.get("encoding") == "base64" else base64.b64encode(
                        buf["data"].encode("latin-1")).decode()
        elif name == "HTMLModel" and st.get("value"):
            lines.append(html.unescape(re.sub(r"<[^>]+>", "", st["value"])))
    if png is None:
        return None
    text = "; ".join(lines) or "explorer"
    return {"image/png": png, "text/plain": f"Default view of the explorer: {text}"}


def staticize(nb) -> tuple[object, int, int]:
    """A copy of ``nb`` whose widget outputs are images; returns (notebook, replaced, missing)."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = missing = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            view = static_view(state, data[WIDGET_VIEW]["model_id"])
            if view is None:
                missing += 1
                out["data"] = {"text/markdown": "*(Interactive explorer: its saved view is missing here; "
                                                "run the chapter in JupyterLab to use it.)*"}
            else:
                replaced += 1
                out["data"] = view
                out["metadata"] = {"image/png": {"alt": view["text/plain"], "explorer": True}}
    nb.metadata.pop("widgets", None)  # nothing left for a widget manager to render
    return nb, replaced, missing




def hide_code(nb) -> int:
    """Hide the input of every code cell not tagged ``slide-code`` (in place); returns how many are shown."""
    shown = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if SLIDE_CODE_TAG in cell.metadata.get("tags", []):
            shown += 1
        else:
            cell.metadata.setdefault("transient", {})["remove_source"] = True
    return shown


def build(notebook: Path, out: Path) -> Path:
    from nbconvert import SlidesExporter

    nb, replaced, missing = staticize(nbformat.read(notebook, as_version=4))
    hide_code(nb)
    exporter = SlidesExporter(
        extra_template_basedirs=[str(HERE / "templates")],
        template_name="offline",
        reveal_url_prefix="_assets/reveal",
        reveal_scroll=True,
        reveal_theme="white",  # its fonts are local files; nbconvert's default (simple) loads web fonts
    )
    exporter.mathjax_url = f"_assets/mathjax/MathJax.js?config={MATHJAX_CONFIG}"
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    for cdn in ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net"):
        if cdn in body:
            raise RuntimeError(f"{notebook.name}: the deck still refers to {cdn}")
    target = out / f"{notebook.stem}.html"
    target.write_text(body, encoding="utf-8")
    note = f", {missing} explorer(s) without saved state" if missing else ""
    print(f"{target}: {replaced} explorer view(s) as images{note}")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="chapters (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "slides", help="output folder (default: slides/)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    copy_assets(args.out)
    for nb in notebooks:
        build(nb, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
