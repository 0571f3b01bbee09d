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

__all__ = ["FAST", "sizes", "cifar10_images", "CheckTable", "grade", "ExerciseNotPassed", "show_figure", "show_images", "load_model", "fid_tables",
           "measurements", "headline_table", "fid_half_gap", "fid_with_halves", "training_gamma", "detail", "contrast", "paired_gap"]


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

    from . import data

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
        from .derive import check_against

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

    from .data import make_grid, to_uint8

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


def load_model(name: str | None = None, *, bf16: bool | None = None):
    """The shipped trained model (see ``diffnotes/pretrained/MODEL_CARD.md``), on the CPU, eval mode.

    ``name`` defaults to :data:`diffnotes.train.DEFAULT_MODEL`. On a CPU with native bf16 the
    network runs under bf16 autocast (:func:`diffnotes.unet.fast_inference`), about 1.7 times
    faster; ``bf16=False``, or the environment variable ``DIFFNOTES_BF16=0``, keeps float32.
    """
    from .train import DEFAULT_MODEL, pretrained
    from .unet import fast_inference

    if bf16 is None and os.environ.get("DIFFNOTES_BF16", "").strip() in ("0", "false", "no"):
        bf16 = False
    return fast_inference(pretrained(name or DEFAULT_MODEL), bf16)


def training_gamma(model, timesteps, *, schedule=None, n: int = 1000, seed: int = 0) -> torch.Tensor:
    r"""Analytic-DPM's :math:`\Gamma_n` of a CIFAR-10 model at ``timesteps``, estimated on the first ``n``
    training images with one noise draw each from ``torch.Generator().manual_seed(seed)``
    (:func:`diffnotes.fast_samplers.estimate_gamma`, Bao et al. 2022, eq. 8).

    The estimate recorded with the shipped model's measurements: ``scripts/model_card/fid_rows.py`` (FID of
    Analytic-DPM) and ``scripts/fast_samplers/bits_per_dim.py`` (its variational bound). ``schedule``
    defaults to ``model.schedule``; ``timesteps`` index it. Raises ``FileNotFoundError`` when no CIFAR-10
    folder is configured. Float64 ``[len(timesteps)]``."""
    from . import fast_samplers

    images = cifar10_images(split="train", verbose=False)
    if images is None:
        raise FileNotFoundError("Gamma is estimated on CIFAR-10 training images, but no CIFAR-10 folder is "
                                "configured: set DIFFNOTES_CIFAR10 to a cifar-10-batches-py folder")
    if not 1 <= n <= images.shape[0]:
        raise ValueError(f"n must be between 1 and {images.shape[0]} (the training images), got {n}")
    from .data import to_float

    x0 = to_float(images[:n])
    with torch.no_grad():
        return fast_samplers.estimate_gamma(model, x0, timesteps, schedule=schedule or model.schedule,
                                            batch_size=250, generator=torch.Generator().manual_seed(seed))


def measurements(kind: str = "fid", name: str | None = None) -> dict | None:
    """What was measured on a shipped model (default :data:`diffnotes.train.DEFAULT_MODEL`), as recorded
    in ``diffnotes/pretrained/fid/``: ``kind="fid"`` the FID rows written by
    ``scripts/model_card/fid_rows.py``, ``"bpd"`` the bits/dim written by
    ``scripts/fast_samplers/bits_per_dim.py``, ``"headline"`` the FID of 10 000 samples against the 50 000
    training images written by ``scripts/model_card/headline.py``. ``None`` when that was not measured."""
    import json

    from .train import DEFAULT_MODEL, PRETRAINED_DIR

    if kind not in ("fid", "bpd", "headline"):
        raise ValueError(f"kind must be 'fid', 'bpd' or 'headline', got {kind!r}")
    path = PRETRAINED_DIR / "fid" / (f"{name or DEFAULT_MODEL}" + ("" if kind == "fid" else f"-{kind}") + ".json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def fid_half_gap(name: str | None = None) -> float:
    """The noise of FID at N = 1 000, as recorded: the largest gap between the FID of the first and of the
    second 1 000 samples of one row of :func:`measurements` (a difference between two rows smaller than this
    is not evidence). Chapters 8 and 9."""
    rows = (measurements("fid", name) or {}).get("rows", {}).values()
    gaps = [abs(r["fid_first1000"] - r["fid_second1000"]) for r in rows if "fid_second1000" in r]
    if not gaps:
        raise ValueError(f"no FID row of {name or 'the default model'} has both halves recorded")
    return max(gaps)


def fid_with_halves(row: dict) -> str:
    """One recorded FID row as text: its FID, and in brackets the FID of its first and second 1 000 samples
    where both are recorded (``"59.2 (70.6 / 72.6)"``; just ``"59.2"`` otherwise)."""
    halves = f" ({row['fid_first1000']:.1f} / {row['fid_second1000']:.1f})" if "fid_second1000" in row else ""
    return f"{row['fid']:.1f}{halves}"


_FID_MAIN = [
    ("ddim_10", "DDIM, eta 0, 10 steps"), ("ddim_20", "DDIM, eta 0, 20 steps"), ("ddim_50", "DDIM, eta 0, 50 steps"),
    ("ddim_100", "DDIM, eta 0, 100 steps"), ("ddpm_100", "DDPM (beta_tilde), 100 respaced steps"),
    ("ode_heun_50", "PF-ODE (VP SDE), Heun, 50 steps, t from 1 to 1e-3"),
    ("ddim_50_cond", "DDIM, eta 0, 50 steps, labels 0..9 in turn"),
    ("real_test", "real test images of the stand-in (the floor at this N)"),
]
_FID_SAMPLERS = [("DDIM (even in t)", "ddim_{}"), ("DPM-Solver++ 2M (rho = 7)", "dpmpp2m_{}_rho7"),
                 ("Heun, EDM (rho = 7)", "heun_{}_rho7")]


def fid_tables(name: str | None = None) -> list[str]:
    """The FID of a shipped model as two Markdown tables, from :func:`measurements`: the model card's main
    table (samplers, labels, the real-data floor; with wall times) and FID against NFE for chapter 9's
    samplers. A row not measured reads "not measured". ``[]`` when nothing was measured."""
    res = measurements("fid", name)
    if res is None:
        return []
    rows = res["rows"]
    n = max(r["n"] for r in rows.values())

    def fid(r):
        return "not measured" if r is None else f"**{r['fid']:.1f}** ({r['fid_first1000']:.1f})"

    main = [f"| samples | NFE | FID ({n:,} vs 2 000 train; first 1 000 in brackets) | wall time on the CPU |".replace(",", " "),
            "|---|---|---|---|"]
    for key, label in _FID_MAIN:
        r = rows.get(key)
        nfe = "-" if r is None or r["nfe"] is None else r["nfe"]
        wall = "-" if r is None else f"{r['seconds']:.0f} s ({r['sample_seconds']:.0f} s of it sampling)"
        main.append(f"| {label} | {nfe} | {fid(r)} | {wall} |")
    nfe_rows = ["| NFE | " + " | ".join(f"FID: {s}" for s, _ in _FID_SAMPLERS) + " |", "|---|---|---|---|"]
    for nfe, heun in ((5, 5), (10, 9), (20, 19), (50, 49)):  # Heun's NFE is odd: 2 x steps - 1
        cells = [fid(rows.get(pattern.format(heun if s.startswith("Heun") else nfe))) for s, pattern in _FID_SAMPLERS]
        nfe_rows.append(f"| {nfe} (Heun {heun}) | " + " | ".join(cells) + " |")
    return ["\n".join(main), "\n".join(nfe_rows)]


def headline_table(name: str | None = None) -> str | None:
    """The model card's headline FID as a Markdown table, from :func:`measurements` ``("headline")``: DDIM
    (eta 0, 50 steps) with all its samples and with the first 2 000, the real test images as the floor at
    both sizes, all against the statistics of the whole training set, with the wall time of each part.
    ``None`` when it was not measured; a part not measured yet reads "not measured"."""
    res = measurements("headline", name)
    if res is None:
        return None
    n, n_ref, sec = res["n"], res.get("n_train"), res.get("seconds", {})

    def num(k):
        return f"{k:,}".replace(",", " ")

    def cell(key, bold=False):
        return "not measured" if key not in res else (f"**{res[key]:.1f}**" if bold else f"{res[key]:.1f}")

    def minutes(sampling, inception):  # keys of the recorded seconds
        parts = [f"{sec[k] / 60:.0f} min {what}" for k, what in ((sampling, "sampling"), (inception, "Inception"))
                 if k in sec]
        return " + ".join(parts) or "-"

    against = f"{num(n_ref)} training images" if n_ref else "the training images"
    rows = [f"| images | N | FID against {against} | wall time on the CPU |", "|---|---|---|---|",
            f"| DDIM, eta 0, {res['steps']} steps | {num(n)} | {cell('fid', True)} | {minutes('sampling', 'samples')} |",
            f"| the first 2 000 of them | 2 000 | {cell('fid_first2000')} | (included) |",
            f"| real test images (the floor) | {num(n)} | {cell('floor', True)} | {minutes(None, 'test')} |",
            f"| the first 2 000 of them | 2 000 | {cell('floor_first2000')} | (included) |"]
    if "train" in sec:
        rows.append(f"| reference: Inception statistics of the training images | {num(n_ref or 0)} | - | "
                    f"{sec['train'] / 60:.0f} min Inception |")
    return "\n".join(rows)


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
