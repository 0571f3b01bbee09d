r"""The numeric check that closes the loop between the algebra and the code: :func:`check_against`.

It evaluates a SymPy expression and a torch function at random points of a stated domain, in
float64, and raises ``AssertionError`` with the worst point when they disagree; a chapter shows
this way that the code implements the formula it derived (:class:`diffnotes.course.CheckTable`'s
``formula`` rows run it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import sympy as sp
import torch

from .._checks import check_int, check_range

__all__ = ["CheckReport", "check_against"]


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_against` measured (it raises before returning when out of tolerance)."""

    max_abs_error: float
    max_rel_error: float
    n: int
    worst_point: dict

    def __str__(self) -> str:
        return (f"{self.n} points: max abs error {self.max_abs_error:.3e}, "
                f"max rel error {self.max_rel_error:.3e}")


def _to_numpy(value, n: int, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(arr, (n,)).astype(np.float64)
    except ValueError:
        raise ValueError(f"{what} must give one value per point (shape [{n}]), got shape {arr.shape}") from None


def check_against(expr, fn: Callable, symbols: Sequence, *, domain: Mapping | None = None,
                  constraint: Callable | None = None, n: int = 200, rtol: float = 1e-10,
                  atol: float = 0.0, generator: torch.Generator | None = None,
                  seed: int = 0) -> CheckReport:
    r"""Check a torch function against a SymPy expression at ``n`` random points of a domain.

    Every symbol is drawn uniformly from its open interval ``domain[symbol]`` (default ``(0, 1)``)
    in float64; points where ``constraint`` is False are redrawn. The expression is evaluated with
    ``sympy.lambdify`` (numpy, float64) and ``fn`` with float64 torch tensors of shape ``[n]``,
    one positional argument per symbol in the order of ``symbols``. Raises ``AssertionError``
    unless, at every point,

    .. math:: |f_\text{torch} - f_\text{sympy}| \le \text{atol} + \text{rtol}\,|f_\text{sympy}|

    This is how each chapter shows that the code implements the derived formula.

    Parameters
    ----------
    expr : sympy.Expr
        E.g. ``posterior_by_completing_square()["c0"]``.
    fn : callable
        ``fn(*tensors) -> Tensor [n]`` (or numbers / numpy); e.g.
        ``lambda ab, abp: forward.posterior_mean_coefs(ab, abp, 1 - ab / abp)[0]``.
        (The order ``check_against(expr, symbols, fn)`` is accepted too: when ``fn`` is not callable
        and ``symbols`` is, the two are swapped; ``tests/test_derive.py`` checks both orders.)
    symbols : sequence of sympy.Symbol or str
        The arguments of ``fn``, in order; they must include every free symbol of ``expr``.
    domain : mapping from symbol (or its name) to (low, high), optional
    constraint : callable, optional
        ``constraint(*tensors) -> bool Tensor [n]``, e.g. ``lambda ab, abp: ab < abp``.
    n : int
        Number of points.
    rtol, atol : float
        Tolerances.
    generator : torch.Generator, optional
        Source of the random points; by default a CPU generator seeded with ``seed``.

    Returns
    -------
    CheckReport
        Maximum absolute and relative errors and the worst point.
    """
    if not callable(fn) and callable(symbols):  # check_against(expr, symbols, fn): see ``fn`` above
        fn, symbols = symbols, fn
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {type(fn).__name__}")
    n = check_int("n", n, 1)
    check_range("rtol", rtol, 0.0, None)
    check_range("atol", atol, 0.0, None)
    expr = sp.sympify(expr)
    if isinstance(symbols, (sp.Symbol, str)):
        symbols = [symbols]
    by_name = {s.name: s for s in expr.free_symbols}
    syms = [by_name.get(s, sp.Symbol(s)) if isinstance(s, str) else s for s in symbols]
    missing = expr.free_symbols - set(syms)
    if missing:
        raise ValueError(
            f"symbols must include every free symbol of expr; missing {sorted(s.name for s in missing)}"
        )
    domain = dict(domain or {})
    unknown = [k for k in domain if (k.name if isinstance(k, sp.Symbol) else k) not in {s.name for s in syms}]
    if unknown:
        raise ValueError(f"domain names symbols that are not in symbols: {unknown}")
    bounds = []
    for s in syms:
        low, high = domain.get(s, domain.get(s.name, (0.0, 1.0)))
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"domain[{s.name!r}] must be a finite interval (low, high) with low < high, "
                             f"got ({low}, {high})")
        bounds.append((low, high))
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed))

    # Rejection sampling of the points.
    columns = [[] for _ in syms]
    have, tries = 0, 0
    while have < n:
        tries += 1
        if tries > 200:
            raise ValueError(
                f"constraint accepted only {have} of the {n} points needed after {200 * max(n, 64)} "
                f"draws; widen domain or relax constraint"
            )
        m = max(n, 64)
        draw = [lo + (hi - lo) * torch.rand(m, generator=generator, dtype=torch.float64)
                for lo, hi in bounds]
        ok = torch.ones(m, dtype=torch.bool)
        for v, (lo, hi) in zip(draw, bounds):
            ok &= (v > lo) & (v < hi)
        if constraint is not None:
            ok &= torch.as_tensor(constraint(*draw), dtype=torch.bool).reshape(m)
        for col, v in zip(columns, draw):
            col.append(v[ok])
        have += int(ok.sum())
    points = [torch.cat(col)[:n] for col in columns]

    with np.errstate(all="ignore"):  # non-finite values are reported just below
        reference = _to_numpy(sp.lambdify(syms, expr, modules="numpy")(*[p.numpy() for p in points]),
                              n, "expr")
    if not np.isfinite(reference).all():
        i = int(np.flatnonzero(~np.isfinite(reference))[0])
        where = {s.name: float(p[i]) for s, p in zip(syms, points)}
        raise ValueError(f"expr is not finite at {where}; restrict domain or add a constraint")
    got = _to_numpy(fn(*[p.clone() for p in points]), n, "fn")
    name = getattr(fn, "__qualname__", repr(fn))
    err = np.abs(got - reference)
    err = np.where(np.isfinite(got), err, np.inf)
    rel = err / np.maximum(np.abs(reference), np.finfo(np.float64).tiny)
    worst = int(np.argmax(err - (atol + rtol * np.abs(reference))))
    where = {s.name: float(p[worst]) for s, p in zip(syms, points)}
    report = CheckReport(float(err.max()), float(rel.max()), n, where)
    if not bool(np.all(err <= atol + rtol * np.abs(reference))):
        raise AssertionError(
            f"{name} disagrees with {expr}: {report} (rtol={rtol}, atol={atol}); worst at {where}: "
            f"expected {reference[worst]!r}, got {got[worst]!r}"
        )
    return report
