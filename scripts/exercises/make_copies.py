"""Student copies of the lessons (`make exercises`): each exercise's solution replaced by a stub.

    python scripts/exercises/make_copies.py [--out exercises] [notebooks/03_ddim.ipynb ...]

Writes ``OUT/<lesson>.ipynb`` for every lesson that has exercises. In a copy, each solution block
(``# BEGIN SOLUTION`` ... ``# END SOLUTION``) is ``raise NotImplementedError("Exercise N: hint")``
and the exercise cells have no outputs; the rest of the lesson is unchanged, so a reader can read
it, run it, and fill in the stubs. The graders are the lesson's own.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffnotes.exercises import student_copy

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="lessons (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "exercises", help="output folder (default: exercises/)")
    args = parser.parse_args(argv)
    lessons = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    missing = [str(p) for p in lessons if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in lessons:
        nb, n = student_copy(json.loads(path.read_text(encoding="utf-8")))
        if n == 0:
            print(f"{path.name}: no exercises")
            continue
        target = args.out / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{target}: {n} exercise(s) with stubs")
        total += n
    print(f"{total} exercise(s) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
