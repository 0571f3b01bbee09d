"""Helpers for the chapter notebooks: fast mode, data access without downloads, checks, pictures.

Every chapter starts with ``from diffnotes.course import *``-free imports such as
``from diffnotes import course`` and uses:

* :data:`FAST` -- ``True`` by default on a CPU and under ``DIFFNOTES_FAST=1`` (``make test``, CI),
  so slow cells use small sizes; the committed outputs are produced in this mode. ``DIFFNOTES_FULL=1``
  (or a CUDA GPU) selects the full sizes.
* :func:`sizes` -- pick a number for fast mode or for the full run.
* :func:`cifar10_images` -- CIFAR-10 images when a folder is configured, else ``None`` with a
  message (it never downloads).
* :class:`CheckTable` -- a section's numeric checks collected into one pass/fail table, shown folded
  into one line ("✓ 12 checks passed") that opens into the table; showing it raises
  ``AssertionError`` with the numbers of every failed row.
* :func:`grade` -- the grader of an exercise: its checks, and a hint when they fail.
* :func:`show_images` -- a grid of images in [-1, 1] (or uint8) as a matplotlib figure.
* :func:`show_figure` -- display a figure with alternative text (and close it).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from . import data
from .derive import check_against
from .data import make_grid, to_uint8

__all__ = ["FAST", "SLIDE_CODE_TAG", "sizes", "cifar10_images", "CheckTable", "grade", "ExerciseNotPassed", "show_figure", "show_images", 
           "detail", "contrast", "paired_gap"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _default_fast() -> bool:
    """Fast mode unless asked otherwise: ``DIFFNOTES_FAST`` (``1`` or ``0``) decides when set;
    else ``DIFFNOTES_FULL=1`` or a CUDA GPU selects the full sizes; else (a laptop CPU) fast."""
    if os.environ.get("DIFFNOTES_FAST", "").strip():
        return _env_flag("DIFFNOTES_FAST")
    if _env_flag("DIFFNOTES_FULL"):
        return False
    return not torch.cuda.is_available()


FAST: bool = _default_fast()

#: The cell tag of code a slide deck shows (``make slides`` hides every other code cell; scripts/slides).
SLIDE_CODE_TAG = "slide-code"
"""Fast mode: small sample counts, so that Run All of a chapter takes minutes, not hours, on a 2-core CPU.

On by default on a CPU (what ``make course`` opens) and under ``DIFFNOTES_FAST=1`` (``make test``, CI;
the committed outputs are made in it); off with ``DIFFNOTES_FULL=1``, ``DIFFNOTES_FAST=0``, or when a
CUDA GPU is present (unless ``DIFFNOTES_FAST=1``)."""


def sizes(fast, full):
    """``fast`` in fast mode (:data:`FAST`), else ``full``."""
    return fast if FAST else full


def cifar10_images(n: int | None = None, split: str = "test", *, verbose: bool = True):
    """The first ``n`` CIFAR-10 images (uint8 ``[n, 3, 32, 32]``) if a copy is configured, else ``None``.

    Looks where :func:`diffnotes.data.find_cifar10` looks (``DIFFNOTES_CIFAR10``, the cache
    folder) and never downloads: run ``python -m diffnotes train --download`` or set
    ``DIFFNOTES_CIFAR10`` to get the data.
    """
    import warnings


    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", data.DataWarning)
            images, _ = data.load_cifar10(split=split, download=False)
    except (data.DataNotFoundError, FileNotFoundError, ValueError) as err:
        if verbose:
            first = str(err).splitlines()[0]
            print(f"CIFAR-10 is not configured here ({first[:120]}...).\n"
                  "Falling back to the shipped model's samples. Set DIFFNOTES_CIFAR10 to a "
                  "cifar-10-batches-py folder to see real images.")
        return None
    images = torch.from_numpy(np.ascontiguousarray(images))
    return images if n is None else images[:n]


def _short(x: float, tiny: float = 1e-9) -> str:
    # 3 significant digits, and round-off (below `tiny`) shown as a bound, so a table reads the same on every machine
    if x == 0:
        return "0"
    return f"< {tiny:.0e}" if abs(x) < tiny else f"{x:.3g}"


class CheckTable:
    """One section's numeric checks, shown as one pass/fail table.

    ``add`` checks ``|value - reference| <= atol + rtol * |reference|`` elementwise and records a row: the name, the value and the reference, the tolerance
    and why it is what it is, and the verdict. For tensors the row shows one element: the worst
    one when the check fails; else the element of largest ``|reference|`` (not the one of largest
    round-off, which changes from one CPU to the next), or the largest deviation when one reference
    value serves every element. ``check`` is ``add`` that raises at once
    when the row fails, for a check cell whose section shows its table later; ``claim`` records a
    property that is true or false (a shape, an ordering) with what was seen. ``show`` displays the
    rows as a Markdown table and then raises ``AssertionError`` naming every failed row with its
    numbers, so a failure is never only a red cell.
    """

    def __init__(self):
        self.rows: list[str] = []
        self.failures: list[str] = []

    def add(self, name: str, value, reference, *, rtol: float = 0.0, atol: float = 0.0, why: str = "") -> bool:
        v = torch.as_tensor(value, dtype=torch.float64)
        r = torch.as_tensor(reference, dtype=torch.float64)
        try:
            r = r.expand_as(v)
        except RuntimeError:
            raise ValueError(f"{name}: the reference's shape {tuple(r.shape)} does not fit the value's "
                             f"shape {tuple(v.shape)}; pass a reference of the same shape (or a scalar)") from None
        err, bound = (v - r).abs(), atol + rtol * r.abs()
        ok = bool(torch.isfinite(v).all()) and bool((err <= bound).all())
        if not ok:
            score = torch.nan_to_num(err - bound, nan=float("inf"))
        elif v.numel() > 1 and bool((r == r.flatten()[0]).all()):
            score = err           # one reference for all (a zero gap, say): show the largest deviation
        else:
            score = r.abs()       # not the largest round-off, which changes from one CPU to the next
        k = int(score.flatten().argmax()) if v.numel() else 0
        vk, rk = (float(v.flatten()[k]), float(r.flatten()[k])) if v.numel() else (float("nan"),) * 2
        tol = ", ".join([f"atol {atol:.3g}"] * bool(atol) + [f"rtol {rtol:.3g}"] * bool(rtol)) or "exact"
        where = (f" ({v.numel()} values)" if ok else f" (worst of {v.numel()})") if v.numel() > 1 else ""
        tiny = min(1e-9, atol / 10) if atol else 1e-9          # the bound shown stays below the tolerance
        self._row(f"{name}{where}", _short(vk, tiny), _short(rk, tiny), f"{tol}{f' ({why})' if why else ''}", ok)
        if not ok:
            worst = float(torch.nan_to_num(err, nan=float("inf")).max())
            self.failures.append(f"{name}: {vk:.6g} vs {rk:.6g} (largest error {worst:.3g}; {tol})")
        return ok

    def check(self, name: str, value, reference, *, rtol: float = 0.0, atol: float = 0.0, why: str = "") -> None:
        """:meth:`add`, raising ``AssertionError`` with the numbers at once if the row fails."""
        if not self.add(name, value, reference, rtol=rtol, atol=atol, why=why):
            raise AssertionError(f"failed check: {self.failures[-1]}")

    def within_se(self, name: str, value, reference, se, *, k: float = 5.0) -> None:
        """A Monte-Carlo check: ``|value - reference| <= k * se`` elementwise, where ``se`` is the standard error
        of ``value`` (a tensor of its shape, or one number), so each element is judged by its own spread. The
        row shows the element that is most standard errors off, its tolerance ``k * se`` there, and how many
        standard errors it is off; raises ``AssertionError`` at once when any element is more than ``k`` off."""
        v, r, s = (torch.as_tensor(a, dtype=torch.float64) for a in (value, reference, se))
        try:
            v, r, s = torch.broadcast_tensors(v, r, s)
        except RuntimeError:
            raise ValueError(f"{name}: value {tuple(v.shape)}, reference {tuple(r.shape)} and se {tuple(s.shape)} "
                             "must have the same shape (or be single numbers)") from None
        if not bool((s > 0).all()):
            raise ValueError(f"{name}: the standard errors must be positive, got a smallest of {float(s.min()):.3g}; "
                             "add a round-off floor (e.g. + 1e-15) where the spread is zero")
        z = torch.nan_to_num((v - r).abs() / s, nan=float("inf")).flatten()
        j = int(z.argmax())
        ok = float(z[j]) <= k
        vj, rj, sj = float(v.flatten()[j]), float(r.flatten()[j]), float(s.flatten()[j])
        where = f" ({v.numel()} values)" if v.numel() > 1 else ""
        self._row(f"{name}{where}", _short(vj), _short(rj), f"atol {k * sj:.2g} ({k:g} SE; off by {float(z[j]):.2g} SE)", ok)
        if not ok:
            self.failures.append(f"{name}: {vj:.6g} vs {rj:.6g} is {float(z[j]):.3g} standard errors off (more than {k:g})")
            raise AssertionError(f"failed check: {self.failures[-1]}")

    def claim(self, name: str, holds: bool, seen: str, expected: str, *, why: str = "") -> None:
        """Record a property that holds or not (``seen`` and ``expected`` say what was compared);
        raises ``AssertionError`` at once when it does not hold."""
        ok = bool(holds)
        self._row(name, seen, expected, why or "-", ok)
        if not ok:
            self.failures.append(f"{name}: saw {seen}, expected {expected}")
            raise AssertionError(f"failed check: {self.failures[-1]}")

    def formula(self, name: str, expr, fn, symbols, *, rtol: float = 1e-10, why: str = "", **kw) -> None:
        """A row for a SymPy expression against the code that implements it: runs
        :func:`diffnotes.derive.check_against` (which raises with the worst point when they disagree;
        ``kw`` goes to it: ``domain``, ``constraint``, ``n``, ``atol``) and records its largest relative
        error against ``rtol``."""
        report = check_against(expr, fn, symbols, rtol=rtol, **kw)
        self.check(f"{name}: largest relative error", report.max_rel_error, 0.0, atol=rtol,
                   why=why or f"{report.n} random points; float64 round-off")

    def proved(self, name: str, *residuals) -> None:
        """A row for SymPy residuals that must all be exactly zero (a proof); raises at once if not."""
        self.claim(name, all(r == 0 for r in residuals), "residual " + ", ".join(map(str, residuals)), "0",
                   why="exact (SymPy)")

    def _row(self, name, value, reference, tol, ok) -> None:
        cells = [str(c).replace("|", "\\|") for c in (name, value, reference, tol)]
        self.rows.append(f"| {' | '.join(cells)} | {'pass' if ok else '**FAIL**'} |")

    def markdown(self) -> str:
        head = "| check | value | reference | tolerance | verdict |\n|---|---|---|---|---|\n"
        return head + "\n".join(self.rows)

    def verdict(self) -> str:
        """The one line a reader sees: ``✓ 12 checks passed``, or ``✗ 2 of 12 checks failed``."""
        n, bad = len(self.rows), len(self.failures)
        if bad:
            return f"✗ {bad} of {n} check{'s' * (n != 1)} failed"
        return f"✓ {n} check{'s' * (n != 1)} passed"

    def folded(self) -> str:
        """:meth:`verdict` as a line that unfolds into the table (an HTML ``<details>`` inside Markdown,
        which JupyterLab, the HTML export and the slide decks render); open when a check failed."""
        return (f"<details{' open' * bool(self.failures)}><summary>{self.verdict()} (click for the table)</summary>"
                f"\n\n{self.markdown()}\n\n</details>")

    def show(self) -> None:
        """Display the folded table (:meth:`folded`), then raise ``AssertionError`` naming every failed row."""
        from IPython.display import Markdown, display

        display(Markdown(self.folded()))
        if self.failures:
            raise AssertionError("failed checks: " + "; ".join(self.failures))



class ExerciseNotPassed(AssertionError):
    """Raised by :func:`grade` when an exercise's checks fail: the failed rows, then the hint."""


def grade(number: int, checks, *, hint: str) -> CheckTable:
    """Grade exercise ``number`` of a lesson: ``checks(table)`` fills a :class:`CheckTable` by calling the
    reader's code and comparing it with an independent value (an oracle, a closed form, the package).

    Shows "Exercise 2: ✓ 4 checks passed" (folded over the table) and returns the table. When a row fails,
    raises :class:`ExerciseNotPassed` with the failed rows and ``hint``. A ``NotImplementedError`` (the stub
    of a student copy made by ``make exercises``) passes through unchanged: its message is the hint.
    """
    from IPython.display import Markdown, display

    if not isinstance(number, int) or number < 1:
        raise ValueError(f"number must be a positive int (the exercise's number), got {number!r}")
    if not callable(checks):
        raise ValueError(f"checks must be callable as checks(table), got {type(checks).__name__}")
    if not isinstance(hint, str) or not hint.strip():
        raise ValueError("hint must be a non-empty sentence that helps a reader whose answer fails")
    table = CheckTable()
    try:
        checks(table)
    except AssertionError as err:
        table.failures = table.failures or [str(err)]
    if not table.rows and not table.failures:
        raise ValueError(f"exercise {number}: checks(table) recorded no check; a grader must compare something")
    display(Markdown(f"**Exercise {number}:** {table.folded()}"))
    if table.failures:
        raise ExerciseNotPassed(f"Exercise {number} is not solved yet: " + "; ".join(table.failures)
                                + f". Hint: {hint}")
    return table

def show_figure(fig, alt: str):
    """Display a matplotlib figure with alternative text, and close it.

    The output carries the PNG twice: as an ``<img alt=...>`` (what JupyterLab, the HTML export and
    the slide decks show, so screen readers read ``alt``) and as plain ``image/png`` with ``alt`` in
    its metadata (for other front ends). ``alt`` says what the figure shows, in one or two sentences.
    """
    import base64
    import html
    import io

    import matplotlib.pyplot as plt
    from IPython.display import display

    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("alt must be a non-empty sentence that says what the figure shows")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=fig.dpi)
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    text = html.escape(alt.strip(), quote=True)
    bundle = {"text/html": f'<img src="data:image/png;base64,{png}" alt="{text}"/>',
              "image/png": png, "text/plain": f"[figure] {alt.strip()}"}
    display(bundle, raw=True, metadata={"image/png": {"alt": alt.strip()}})


def show_images(x, *, nrow: int = 8, title: str | None = None, ax=None, scale: float = 1.0):
    """Show a batch of images (float in [-1, 1] or uint8, ``[N, 3, H, W]``) as one grid.

    Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt


    x = torch.as_tensor(x).detach().cpu()
    if x.dtype != torch.uint8:
        x = to_uint8(x)
    grid = make_grid(x, nrow=nrow)
    grid = np.asarray(grid)
    if grid.ndim == 3 and grid.shape[0] in (1, 3):
        grid = grid.transpose(1, 2, 0)
    if ax is None:
        h, w = grid.shape[:2]
        fig, ax = plt.subplots(figsize=(scale * w / 40 + 0.5, scale * h / 40 + 0.5))
    else:
        fig = ax.figure
    ax.imshow(grid.squeeze(), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------------------------
# cheap image statistics, for claims about sample quality that a chapter can afford to measure
# ---------------------------------------------------------------------------------------------
def detail(x: torch.Tensor) -> torch.Tensor:
    r"""Per-image fine detail: :math:`\log` of the mean squared response of the discrete Laplacian
    :math:`4x_{ij} - x_{i-1,j} - x_{i+1,j} - x_{i,j-1} - x_{i,j+1}` over the interior pixels.

    ``x``: images ``[N, C, H, W]`` in :math:`[-1, 1]` (uint8 is rescaled). Blurry images score
    low, noisy ones high; real CIFAR-10 test images average about -2.1. Returns float64 ``[N]``.
    """
    x = _as_unit(x)
    lap = 4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
    return lap.pow(2).mean((1, 2, 3)).clamp_min(1e-12).log()


def contrast(x: torch.Tensor) -> torch.Tensor:
    """Per-image contrast: the standard deviation of all its pixels (``[N, C, H, W]`` in [-1, 1];
    uint8 is rescaled). Washed-out images score low. Returns float64 ``[N]``."""
    return _as_unit(x).flatten(1).std(1)


def _as_unit(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"images must have shape [N, C, H, W], got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.double() / 127.5 - 1
    return x.double().clamp(-1, 1)  # what a saved image would show


def paired_gap(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of ``a - b`` over paired samples (the same latents, say): the
    difference is significant when the mean is several standard errors from 0."""
    d = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    if d.ndim != 1 or d.numel() < 2:
        raise ValueError(f"a and b must be paired 1-D samples of at least 2 values, got shape {tuple(d.shape)}")
    return float(d.mean()), float(d.std() / d.numel() ** 0.5)
