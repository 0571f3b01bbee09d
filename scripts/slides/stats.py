"""Slide budget of each lesson: slides, words per slide (median, largest), code cells shown.

    python scripts/slides/stats.py [notebooks/03_ddim.ipynb ...] [--max-words 150]

A slide starts at a cell whose ``slideshow.slide_type`` is ``slide`` or ``subslide`` and holds the
cells after it (``fragment`` and ``-``) up to the next one; ``skip`` and ``notes`` cells are not on
a slide. Words are those of the Markdown cells, without LaTeX, HTML tags, code spans and link
targets; code cells count as shown only when tagged ``slide-code`` (see build_decks.py). Exits with
status 1 when ``--strict`` is given and a slide has more than ``--max-words`` words.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from diffnotes.course import SLIDE_CODE_TAG

ROOT = Path(__file__).resolve().parents[2]


def prose_words(markdown: str) -> int:
    """Words a reader reads in a Markdown cell: math, tags, code and link targets removed."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " ", markdown, flags=re.S)
    text = re.sub(r"```.*?```|`[^`]*`", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>|\]\([^)]*\)", " ", text)
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.,-]*", text))


def slides(nb: dict) -> list[dict]:
    """One dict per slide: its words and the code cells shown on it."""
    out: list[dict] = []
    for cell in nb["cells"]:
        kind = cell.get("metadata", {}).get("slideshow", {}).get("slide_type", "-")
        if kind in ("skip", "notes"):
            continue
        if kind in ("slide", "subslide") or not out:
            out.append({"words": 0, "code": 0})
        src = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            out[-1]["words"] += prose_words(src)
        elif cell["cell_type"] == "code" and SLIDE_CODE_TAG in cell.get("metadata", {}).get("tags", []):
            out[-1]["code"] += 1
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="lessons (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--max-words", type=int, default=150, help="the budget of words per slide (default 150)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a slide is over the budget")
    args = parser.parse_args(argv)
    lessons = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    print(f"| lesson | slides | median words | largest | over {args.max_words} | code cells shown |")
    print("|---|---|---|---|---|---|")
    over_any = False
    for path in lessons:
        s = slides(json.loads(path.read_text(encoding="utf-8")))
        words = [x["words"] for x in s] or [0]
        over = sum(w > args.max_words for w in words)
        over_any |= over > 0
        print(f"| {path.stem} | {len(s)} | {statistics.median(words):.0f} | {max(words)} | {over} | "
              f"{sum(x['code'] for x in s)} |")
    return 1 if args.strict and over_any else 0


if __name__ == "__main__":
    raise SystemExit(main())
