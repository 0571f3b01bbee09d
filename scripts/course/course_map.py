"""The README's course map, written from the lessons' own title cells (one home for each objective).

    python scripts/course/course_map.py            # print the map
    python scripts/course/course_map.py --write    # replace the map in README.md
    python scripts/course/course_map.py --check    # exit 1 if README.md's map is out of date

Each lesson's first cell holds its title ("# Chapter N — Title"), "**After this lesson you can**" with
a numbered list, "**Assumes:** ..." and "**Study time:** ...". The map lists them per lesson, with the
lesson's appendix where it has one. tests/test_course_map.py runs ``--check``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- course-map: written by scripts/course/course_map.py -->", "<!-- /course-map -->"


def _field(text: str, name: str) -> str:
    m = re.search(rf"\*\*{name}:\*\*\s*(.*?)(?=\s*\*\*|\n\s*\n|$)", text, flags=re.S)
    if not m:
        raise ValueError(f"no '**{name}:**' in the title cell")
    return " ".join(m.group(1).split()).rstrip(".")


def lesson_entry(path: Path) -> dict:
    """Title, objectives, prerequisites and study time of one lesson, read from its first cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "".join(cells[0]["source"]) if cells else ""
    title = re.match(r"#\s*(.+)", text)
    if not title or "**After this lesson you can**" not in text:
        raise ValueError(f"{path.name}: the first cell must hold the title and '**After this lesson you can**'")
    after = text.split("**After this lesson you can**", 1)[1]
    objectives, current = [], None
    for line in after.splitlines():
        m = re.match(r"\s*\d+\.\s+(.*)", line)
        if m:
            current = [m.group(1).strip()]
            objectives.append(current)
        elif current is not None and line.startswith(("   ", "\t")) and line.strip():
            current.append(line.strip())
        elif objectives and (line.startswith("**") or (not line.strip() and current is None)):
            break
        elif not line.strip():
            current = None
    if not 3 <= len(objectives) <= 5:
        raise ValueError(f"{path.name}: {len(objectives)} objectives; a lesson states 3 to 5")
    return {"file": path.relative_to(ROOT).as_posix(), "title": re.sub(r"&mdash;|—", "-", title.group(1)).strip(),
            "objectives": [" ".join(o).rstrip(";.") for o in objectives],
            "assumes": _field(text, "Assumes"), "time": _field(text, "Study time")}


def course_map(root: Path = ROOT) -> str:
    lines = [BEGIN, ""]
    for path in sorted((root / "notebooks").glob("[0-9]*.ipynb")):
        e = lesson_entry(path)
        appendix = root / "notebooks" / "appendix" / f"{path.stem}_appendix.ipynb"
        extra = f"; its full verification: `{appendix.relative_to(root).as_posix()}`" if appendix.exists() else ""
        lines.append(f"**{e['title']}** (`{e['file']}`{extra}). Study time: {e['time']}. Assumes: {e['assumes']}.")
        lines.append("After it you can:")
        lines += [f"- {o}" for o in e["objectives"]]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="replace the map in README.md")
    group.add_argument("--check", action="store_true", help="exit 1 when README.md's map is out of date")
    args = parser.parse_args(argv)
    text = course_map()
    if not (args.write or args.check):
        print(text)
        return 0
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    if BEGIN not in current or END not in current:
        print(f"README.md has no course map between '{BEGIN}' and '{END}'", file=sys.stderr)
        return 1
    a, b = current.index(BEGIN), current.index(END) + len(END)
    if args.check:
        if current[a:b] != text:
            print("README.md's course map is out of date: run python scripts/course/course_map.py --write",
                  file=sys.stderr)
            return 1
        return 0
    readme.write_text(current[:a] + text + current[b:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
