r"""The course's formulas derived in SymPy, and a checker that compares them with the torch code.

Each derivation is a function that *computes* a result from its premises (Bayes' rule, matching
moments, composing Gaussian steps, ...) and proves it equal to the closed form printed in the paper.
It returns a :class:`Derivation`: the intermediate steps to show in a chapter, the result, the
published form, and the residual ``result - expected``, which is exactly ``0`` when the identity is
proven. A chapter shows and asserts in two lines::

    d = derive.ddim_coefficients()
    d            # renders the steps in Jupyter
    assert d.holds()

:func:`check_against` then closes the loop between the algebra and the code: it evaluates a SymPy
expression and a torch function at random points of a stated domain and raises ``AssertionError``
when they disagree.

Proofs with square roots
------------------------
``sympy.simplify`` cannot always see that
:math:`\sqrt{(\bar\alpha_{t-1}+\sigma^2-1)/(\bar\alpha_t-1)} = \sqrt{1-\bar\alpha_{t-1}-\sigma^2}/\sqrt{1-\bar\alpha_t}`
(it needs the signs of the two factors). :func:`prove_zero` therefore puts every expression in a
normal form: each square root is split into square roots of irreducible polynomials, each made
positive on the domain (read off at a sample point such as
:math:`\bar\alpha_t=3/10,\ \bar\alpha_{t-1}=1/2,\ \sigma=1/5`), and each replaced by a positive symbol
:math:`r_i` with :math:`r_i^2=f_i`. The numerator is then a polynomial that is reduced modulo
:math:`r_i^2-f_i`; because square roots of distinct irreducible polynomials are linearly
independent, the expression vanishes on the domain exactly when every reduced coefficient expands
to 0. This is the "substitute positive symbols so that the algebra is polynomial" idea, automated.

Chapters 1 (forward process), 2 (DDPM posterior), 3 (DDIM) and 4 (losses).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from types import MappingProxyType, SimpleNamespace
from typing import Callable, Mapping, Sequence

import numpy as np
import sympy as sp
import torch

from ._checks import check_int, check_range

__all__ = [
    "Derivation",
    "CheckReport",
    "paper_symbols",
    "gaussian_expectation",
    "prove_zero",
    "forward_marginal_by_induction",
    "forward_marginal_n_steps",
    "posterior_by_completing_square",
    "ddim_coefficients",
    "ddim_sigma_eta",
    "ddim_sigma_eta1_is_beta_tilde",
    "ddim_noise_matching_ddpm",
    "ddim_as_euler_ode",
    "gaussian_kl",
    "check_against",
    "show_aligned",
]


# --------------------------------------------------------------------------- symbols
# Code name -> LaTeX, so that steps print as in the papers (CONTRIBUTING.md notation table).
_LATEX_NAMES = {
    "alpha_t": r"\alpha_t",
    "beta_t": r"\beta_t",
    "alpha_bar_t": r"\bar\alpha_t",
    "alpha_bar_prev": r"\bar\alpha_{t-1}",
    "sigma": r"\sigma_t",
    "eta": r"\eta",
    "x_0": "x_0",
    "x_t": "x_t",
    "x_prev": "x_{t-1}",
    "eps": r"\epsilon",
    "eps_prev": r"\epsilon'",
    "eps_hat": r"\hat\epsilon",
    "k": "k",
    "m": "m",
    "mu_1": r"\mu_1",
    "mu_2": r"\mu_2",
    "s_1": r"s_1",
    "s_2": r"s_2",
}


@functools.lru_cache(maxsize=None)
def paper_symbols() -> SimpleNamespace:
    r"""The SymPy symbols of the course, named like the code (CONTRIBUTING.md notation table).

    Schedule quantities are positive reals (``alpha_t``, ``beta_t``, ``alpha_bar_t``,
    ``alpha_bar_prev``, ``sigma``, and the Gaussian stds ``s_1``, ``s_2``); ``eta`` is
    non-negative; samples and noises (``x_0``, ``x_t``, ``x_prev``, ``eps``, ``eps_prev``,
    ``eps_hat``), the DDIM unknowns ``k``, ``m`` and the means ``mu_1``, ``mu_2`` are real.
    Symbols are compared by name and assumptions, so these equal any symbol made the same way.

    Example: ``S = paper_symbols(); S.alpha_bar_t``.
    """
    pos = dict(positive=True)
    real = dict(real=True)
    names_pos = ("alpha_t", "beta_t", "alpha_bar_t", "alpha_bar_prev", "sigma", "s_1", "s_2")
    names_real = ("x_0", "x_t", "x_prev", "eps", "eps_prev", "eps_hat", "k", "m", "mu_1", "mu_2")
    ns = {n: sp.Symbol(n, **pos) for n in names_pos}
    ns.update({n: sp.Symbol(n, **real) for n in names_real})
    ns["eta"] = sp.Symbol("eta", nonnegative=True)
    return SimpleNamespace(**ns)


def _sample_point() -> dict:
    """A point inside the domain 0 < alpha_bar_t < alpha_bar_prev < 1, sigma^2 < 1 - alpha_bar_prev,
    used only to read off the sign of each factor under a square root (see :func:`prove_zero`)."""
    S = paper_symbols()
    R = sp.Rational
    return {
        S.alpha_bar_t: R(3, 10), S.alpha_bar_prev: R(1, 2), S.alpha_t: R(3, 5), S.beta_t: R(2, 5),
        S.sigma: R(1, 5), S.eta: R(1, 2), S.s_1: R(1, 3), S.s_2: R(3, 4),
    }


# --------------------------------------------------------------------------- the result type
def _latex(expr) -> str:
    names = {s: _LATEX_NAMES[s.name] for s in getattr(expr, "free_symbols", ()) if s.name in _LATEX_NAMES}
    return sp.latex(expr, symbol_names=names)


# Code names in labels -> LaTeX (longest first, so alpha_bar wins over alpha).
_LABEL_NAMES = (
    ("alpha_bar", r"\bar\alpha"), ("beta_tilde", r"\tilde\beta_t"), ("alpha", r"\alpha"),
    ("beta", r"\beta"), ("sigma", r"\sigma"), ("eps", r"\epsilon"), ("eta", r"\eta"), ("mu", r"\mu"),
)
_LABEL_WORDS = {name for name, _ in _LABEL_NAMES} | {"sqrt", "log", "coef"}


def _label_math(token: str) -> str | None:
    """The LaTeX of one label token that is a formula (``x_{t-1}^2``, ``sqrt(alpha_bar_{t-1})``),
    or None when it is a plain word (then it stays text)."""
    if token.count("{") != token.count("}"):
        return None
    words = re.findall(r"[A-Za-z]+", re.sub(r"alpha_bar|beta_tilde", "alpha", token))
    if not words or not all(len(w) == 1 or w in _LABEL_WORDS for w in words):
        return None
    if not ("_" in token or "^" in token or any(w in _LABEL_WORDS for w in words)):
        return None
    out = token
    out = re.sub(r"sqrt\(([^()]*)\)", r"\\sqrt{\1}", out)
    for name, tex in _LABEL_NAMES:
        out = re.sub(rf"(?<![A-Za-z\\]){name}(?![A-Za-z])", lambda _m, tex=tex: tex + " ", out)
    out = re.sub(r"(?<![A-Za-z\\])coef(?=\()", r"\\operatorname{coef}", out)
    out = re.sub(r"(?<![A-Za-z\\])log(?![A-Za-z])", r"\\log ", out)
    return re.sub(r" (?=[_^(){},\[\]])", "", out).strip()


def _latex_text(label: str) -> str:
    r"""A plain-text step label as LaTeX (math mode): words in ``\text{...}``, formulas as math.

    ``"coefficient of x_{t-1}^2"`` becomes ``\text{coefficient of }x_{t-1}^2``: the exponent is
    typeset as an exponent (in ``\text{}`` a ``^`` is an error in LaTeX and KaTeX, and used to be
    dropped here, which printed "x_{t-1} 2"). A token counts as a formula when it has a ``_`` or
    ``^`` (or names a Greek code symbol such as ``alpha_bar`` or ``eps``) and its letters are
    single-letter symbols or known code names; code names become the paper's symbols. Anything
    else is text, with LaTeX's special characters escaped.
    """
    def text(chunk: str) -> str:
        for char in "\\{}_&%$#":
            chunk = chunk.replace(char, "\\" + char if char != "\\" else r"\backslash ")
        chunk = chunk.replace("^", r"\^{}")
        return rf"\text{{{chunk}}}"

    pieces, pending = [], ""
    for part in re.split(r"(\s+)", label):
        tex = _label_math(part) if part.strip() else None
        if tex is None:
            pending += part
            continue
        if pending:
            pieces.append(text(pending))
            pending = ""
        if pieces and not pieces[-1].startswith(r"\text"):
            pieces.append(r"\ ")
        pieces.append(tex)
    if pending:
        pieces.append(text(pending))
    return "".join(pieces)


@dataclass(frozen=True, eq=False)
class Derivation:
    r"""A derived identity: the steps, the result, the published form and the proof residual.

    Attributes
    ----------
    name : str
        What was derived.
    source : str
        Where the closed form is printed (paper, equation).
    result : Mapping[str, sympy.Expr]
        The derived expressions, written in independent symbols (ready for :func:`check_against`).
    expected : Mapping[str, sympy.Expr]
        The closed forms as printed in the paper (they may use dependent symbols such as
        :math:`\alpha_t`; ``relations`` eliminates them).
    relations : Mapping[sympy.Symbol, sympy.Expr]
        Substitutions for the dependent symbols, e.g. :math:`\alpha_t = \bar\alpha_t/\bar\alpha_{t-1}`.
    residual : Mapping[str, sympy.Expr]
        ``result - expected`` (after ``relations``) in the normal form of :func:`prove_zero`;
        every entry is exactly ``0`` when the identity holds.
    steps : tuple of (str, sympy.Basic)
        The derivation, one labelled expression per line, for display.
    """

    name: str
    source: str
    result: Mapping[str, sp.Expr]
    expected: Mapping[str, sp.Expr]
    relations: Mapping[sp.Symbol, sp.Expr]
    residual: Mapping[str, sp.Expr]
    steps: tuple

    def holds(self) -> bool:
        """True when every residual is exactly zero, i.e. the identity is proven."""
        return all(r == 0 for r in self.residual.values())

    def __getitem__(self, key: str) -> sp.Expr:
        """``d["k"]`` is ``d.result["k"]``."""
        return self.result[key]

    def to_latex(self) -> str:
        """The steps, results and residuals as one LaTeX ``aligned`` block."""
        rows = [(label, e) for label, e in self.steps]
        rows += [(f"result {key}", e) for key, e in self.result.items()]
        rows += [(f"{self.source}, {key}", e) for key, e in self.expected.items()]
        rows += [(f"residual {key}", e) for key, e in self.residual.items()]
        lines = [rf"{_latex_text(label)}: &\quad {_latex(e)}" for label, e in rows]
        return r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"

    def summary_latex(self) -> str:
        """The short form a chapter shows: each result as the paper prints it, then the residual
        ``derived - printed`` that :func:`prove_zero` reduced (``0`` for every key when it holds)."""
        lines = [rf"{_latex_text(key)}: &\quad {_latex(e)}" for key, e in self.expected.items()]
        if self.holds():
            keys = ", ".join(self.residual)
            lines.append(rf"\text{{derived}} - {_latex_text(self.source)} \ ({_latex_text(keys)}): &\quad 0")
        else:
            lines += [rf"\text{{residual}} \ {_latex_text(key)}: &\quad {_latex(e)}" for key, e in self.residual.items()]
        return r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        # the short form; the full derivation is ``to_latex()`` (or :meth:`show_steps`)
        return f"$\\displaystyle {self.summary_latex()}$"

    def show_steps(self):
        """Display every step of the derivation (what ``to_latex`` writes)."""
        from IPython.display import Math, display

        display(Math(self.to_latex()))

    def __repr__(self) -> str:
        status = "holds" if self.holds() else "DOES NOT HOLD"
        return f"Derivation({self.name!r}, {status}, result={dict(self.result)})"


def show_aligned(*rows, names: Mapping | None = None, sep: str = r": &\quad ") -> None:
    r"""Display rows as one LaTeX ``aligned`` block: how a chapter shows a derivation it builds itself,
    ending with the residuals that SymPy proved to be zero.

    A row is a LaTeX string (``"a &= b"``, used as it is) or a pair ``(label, expr)`` written
    ``label + sep + latex(expr)``; ``expr`` is a SymPy expression (typeset with ``names``, a
    symbol -> LaTeX map, or the paper's names of :func:`paper_symbols`) or a LaTeX string.
    """
    from IPython.display import Math, display

    def tex(e):
        if isinstance(e, str):
            return e
        return sp.latex(e, symbol_names=dict(names)) if names is not None else _latex(e)

    lines = [r if isinstance(r, str) else f"{r[0]}{sep}{tex(r[1])}" for r in rows]
    display(Math(r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"))


def _derivation(name, source, result, expected, steps, relations=None, point=None) -> Derivation:
    """Build a :class:`Derivation`, proving ``result[k] == expected[k]`` for every key."""
    relations = dict(relations or {})
    residual, shown = {}, {}
    for key in result:
        raw = sp.sympify(result[key]).subs(relations)
        residual[key] = prove_zero(raw - sp.sympify(expected[key]).subs(relations), point)
        shown[key] = _tidy(raw, point)
        if prove_zero(shown[key] - raw, point) != 0:  # pragma: no cover - _tidy must be an identity
            raise RuntimeError(f"tidying {raw} changed its value to {shown[key]}")
    return Derivation(
        name=name,
        source=source,
        result=MappingProxyType(shown),
        expected=MappingProxyType(dict(expected)),
        relations=MappingProxyType(relations),
        residual=MappingProxyType(residual),
        steps=tuple(steps),
    )


# --------------------------------------------------------------------------- algebra helpers
def gaussian_expectation(expr, noises: Sequence[sp.Symbol]) -> sp.Expr:
    r"""Expectation of ``expr`` over independent standard normal ``noises``.

    ``expr`` must be a polynomial in the noises (its coefficients may be anything). Each monomial
    is replaced by the product of the moments

    .. math:: E[\epsilon^{k}] = (k-1)!! \text{ for even } k,\qquad 0 \text{ for odd } k.

    This is the "expectation algebra" behind every Gaussian computation of the course: means and
    variances of sums of independent Gaussians (chapter 1), the DDIM marginals (chapter 3), the
    Gaussian KL (chapter 4).
    """
    noises = tuple(noises)
    if not noises:
        return sp.sympify(expr)
    poly = sp.Poly(sp.expand(expr), *noises)
    total = sp.Integer(0)
    for powers, coef in poly.terms():
        moment = sp.Integer(1)
        for k in powers:
            moment *= 0 if k % 2 else sp.factorial2(k - 1)
        total += coef * moment
    return sp.expand(total)


def _sqrt_normal_form(base, point, roots: dict) -> sp.Expr:
    """sqrt(base) as sqrt(c) * prod f_i^(e_i//2) * prod r_i, each f_i positive at ``point``."""
    num, den = sp.fraction(sp.together(base))
    out, const_total = sp.Integer(1), sp.Integer(1)
    for part, power in ((num, 1), (den, -1)):
        const, factors = sp.factor_list(sp.expand(part))
        const = sp.nsimplify(const)
        for f, e in factors:
            v = sp.sympify(f.subs(point))
            if not v.is_number or not v.is_real or v == 0:
                raise ValueError(
                    f"cannot read the sign of the factor {f} under a square root at the sample point "
                    f"{point} (it is {v}); pass a point where it is non-zero"
                )
            if v < 0:  # make the factor positive on the domain: sqrt(-f)^2 == -f
                f = sp.expand(-f)
                if e % 2:
                    const = -const
            r = roots.setdefault(f, sp.Dummy("r", positive=True))
            out *= (f ** (e // 2) * r ** (e % 2)) ** power
        const_total *= const ** power
    if const_total < 0:
        raise ValueError(f"the radicand {base} is negative at the sample point {point}")
    return out * sp.sqrt(const_total)


def prove_zero(expr, point: Mapping | None = None) -> sp.Expr:
    r"""Normal form of ``expr`` that is exactly ``0`` when ``expr`` vanishes on the domain.

    ``expr`` is a rational function of the symbols and of square roots of rational functions
    (no nested roots). Each square root is split into square roots of irreducible polynomials
    :math:`f_i`, signed to be positive at ``point`` (a point of the domain; the default lies in
    :math:`0<\bar\alpha_t<\bar\alpha_{t-1}<1,\ \sigma_t^2<1-\bar\alpha_{t-1}`), and replaced by
    positive symbols :math:`r_i`; the numerator is reduced modulo :math:`r_i^2 - f_i`. The result is
    0 exactly when every coefficient of the reduced polynomial expands to zero, which proves the
    identity wherever the factors keep the signs they have at ``point`` (on the whole domain for
    the course's identities). Otherwise the (non-zero) reduced residual is returned.
    """
    if point is None:
        point = _sample_point()
    point = dict(point)
    expr = sp.expand_log(sp.sympify(expr), force=False)
    roots: dict = {}
    replace = {}
    for p in expr.atoms(sp.Pow):
        if p.exp.is_Rational and p.exp.q == 2:
            if any(a.exp.is_Rational and not a.exp.is_integer for a in p.base.atoms(sp.Pow)):
                raise ValueError(f"nested square roots are not supported: {p}")
            replace[p] = _sqrt_normal_form(p.base, point, roots) ** p.exp.p
        elif p.exp.is_Rational and not p.exp.is_integer:
            raise ValueError(f"only square roots are supported, got {p}")
    num, den = sp.fraction(sp.together(expr.xreplace(replace)))
    reduced = _reduce_mod_roots(num, roots)
    if all(sp.expand(c) == 0 for c in reduced.values()):
        return sp.Integer(0)
    rs = list(roots.values())
    residual = sp.Add(*[sp.factor(c) * sp.Mul(*[r ** k for r, k in zip(rs, key)])
                        for key, c in reduced.items() if sp.expand(c) != 0])
    back = {r: sp.sqrt(f) for f, r in roots.items()}
    return (residual / den).xreplace(back)


def _reduce_mod_roots(poly_expr, roots: dict) -> dict:
    """Write a polynomial in the root symbols r_i (r_i^2 = f_i) as
    {square-free exponent tuple: coefficient free of the r_i}, i.e. reduce modulo r_i^2 - f_i."""
    rs = list(roots.values())
    if not rs:
        return {(): sp.expand(poly_expr)}
    f_of = {r: f for f, r in roots.items()}
    reduced: dict = {}
    for powers, coef in sp.Poly(sp.expand(poly_expr), *rs).terms():
        key = tuple(k % 2 for k in powers)
        lifted = sp.Mul(*[f_of[r] ** (k // 2) for r, k in zip(rs, powers)])
        reduced[key] = reduced.get(key, 0) + coef * lifted
    return reduced


def _tidy(expr, point: Mapping | None = None) -> sp.Expr:
    """A readable form for display: square roots split into positive factors (as in
    :func:`prove_zero`), numerator and denominator reduced modulo r_i^2 = f_i, then the shorter of
    "one fraction, factored" and "each term factored"."""
    point = _sample_point() if point is None else dict(point)
    expr = sp.sympify(expr)
    roots: dict = {}
    replace = {p: _sqrt_normal_form(p.base, point, roots) ** p.exp.p
               for p in expr.atoms(sp.Pow) if p.exp.is_Rational and p.exp.q == 2}
    rs = list(roots.values())

    def rebuild(part):
        return sp.Add(*[c * sp.Mul(*[r ** k for r, k in zip(rs, key)])
                        for key, c in _reduce_mod_roots(part, roots).items()])

    num, den = sp.fraction(sp.together(expr.xreplace(replace)))
    e = rebuild(num) / rebuild(den)
    candidates = [sp.factor(e)]
    if isinstance(sp.expand(e), sp.Add):
        candidates.append(sp.Add(*[sp.factor(term) for term in sp.Add.make_args(sp.expand(e))]))
    best = min(candidates, key=sp.count_ops)
    return best.xreplace({r: sp.sqrt(f) for f, r in roots.items()})


def _ddim_relations() -> dict:
    r"""Per-step quantities of a (possibly respaced) step in terms of the two noise levels:
    :math:`\alpha_t = \bar\alpha_t/\bar\alpha_{t-1}`, :math:`\beta_t = 1-\alpha_t`."""
    S = paper_symbols()
    return {S.alpha_t: S.alpha_bar_t / S.alpha_bar_prev, S.beta_t: 1 - S.alpha_bar_t / S.alpha_bar_prev}


def _eq(lhs, rhs):
    return sp.Eq(lhs, rhs, evaluate=False)


# --------------------------------------------------------------------------- chapter 1
@functools.lru_cache(maxsize=None)
def forward_marginal_by_induction() -> Derivation:
    r"""Composing forward steps gives :math:`q(x_t\mid x_0) = N(\sqrt{\bar\alpha_t}x_0,\ 1-\bar\alpha_t)`.

    Induction step: if :math:`x_{t-1} = \sqrt{\bar\alpha_{t-1}}x_0 + \sqrt{1-\bar\alpha_{t-1}}\,\epsilon'`
    and :math:`x_t = \sqrt{\alpha_t}x_{t-1} + \sqrt{\beta_t}\,\epsilon` with independent standard
    normal noises, then (expectation algebra)

    .. math::
        E[x_t\mid x_0] = \sqrt{\alpha_t}\sqrt{\bar\alpha_{t-1}}\,x_0 = \sqrt{\bar\alpha_t}\,x_0,\qquad
        \operatorname{Var}[x_t\mid x_0] = \alpha_t(1-\bar\alpha_{t-1}) + \beta_t = 1-\bar\alpha_t

    using :math:`\beta_t = 1-\alpha_t` and :math:`\bar\alpha_t = \alpha_t\bar\alpha_{t-1}`; the base
    case is :math:`\bar\alpha_0 = 1`. Ho et al. 2020, eq. 4. Chapter 1.

    Returns
    -------
    Derivation
        ``result["mean_coef"]``, ``result["variance"]`` in :math:`(\alpha_t, \bar\alpha_{t-1})`.
    """
    S = paper_symbols()
    hypothesis = sp.sqrt(S.alpha_bar_prev) * S.x_0 + sp.sqrt(1 - S.alpha_bar_prev) * S.eps_prev
    x_t = sp.sqrt(S.alpha_t) * hypothesis + sp.sqrt(S.beta_t) * S.eps
    noises = (S.eps_prev, S.eps)
    mean = gaussian_expectation(x_t, noises)
    variance = gaussian_expectation((x_t - mean) ** 2, noises)
    relations = {S.beta_t: 1 - S.alpha_t, S.alpha_bar_t: S.alpha_t * S.alpha_bar_prev}
    mean_coef = sp.simplify(mean / S.x_0)
    variance_reduced = sp.expand(variance.subs(relations))
    steps = [
        ("base case (alpha_bar_0 = 1)", _eq(S.x_prev, hypothesis.subs(S.alpha_bar_prev, 1))),
        ("induction hypothesis, q(x_{t-1} | x_0)", _eq(S.x_prev, hypothesis)),
        ("one forward step, q(x_t | x_{t-1})", _eq(S.x_t, sp.sqrt(S.alpha_t) * S.x_prev + sp.sqrt(S.beta_t) * S.eps)),
        ("composed", _eq(S.x_t, x_t)),
        ("mean E[x_t | x_0]", mean),
        ("variance (independent noises add)", variance),
        ("with beta_t = 1 - alpha_t", variance_reduced),
        ("alpha_bar_t = alpha_t alpha_bar_{t-1}", _eq(S.alpha_bar_t, S.alpha_t * S.alpha_bar_prev)),
    ]
    return _derivation(
        "forward marginal q(x_t | x_0) by induction", "Ho et al. 2020, eq. 4",
        result={"mean_coef": mean_coef, "variance": variance_reduced},
        expected={"mean_coef": sp.sqrt(S.alpha_bar_t), "variance": 1 - S.alpha_bar_t},
        steps=steps, relations=relations,
    )


@functools.lru_cache(maxsize=None)
def forward_marginal_n_steps(n: int) -> Derivation:
    r"""The forward marginal after ``n`` explicit steps with symbolic :math:`\beta_1..\beta_n`.

    .. math::
        x_n = \sqrt{1-\beta_n}\,x_{n-1} + \sqrt{\beta_n}\,\epsilon_n,\ \dots \quad\Rightarrow\quad
        x_n \mid x_0 \sim N\!\Big(\sqrt{\textstyle\prod_s(1-\beta_s)}\;x_0,\
        1-\textstyle\prod_s(1-\beta_s)\Big)

    The concrete companion of :func:`forward_marginal_by_induction` (Ho et al. 2020, eq. 4).
    Chapter 1. The expanded variance has :math:`2^n` terms, so ``n`` is limited to 1..10.

    Returns
    -------
    Derivation
        ``result["mean_coef"]``, ``result["variance"]`` in the positive symbols
        ``sympy.symbols(f"beta_1:{n + 1}", positive=True)``.
    """
    n = check_int("n", n, 1, 10)
    betas = sp.symbols(f"beta_1:{n + 1}", positive=True)
    noises = sp.symbols(f"epsilon_1:{n + 1}", real=True)
    S = paper_symbols()
    x = S.x_0
    steps = []
    for b, e in zip(betas, noises):
        x = sp.sqrt(1 - b) * x + sp.sqrt(b) * e
    steps.append((f"x after {n} steps", x))
    mean = gaussian_expectation(x, noises)
    variance = gaussian_expectation((x - mean) ** 2, noises)
    steps += [("mean E[x | x_0]", mean), ("variance", sp.factor(variance))]
    prod = sp.Mul(*[1 - b for b in betas])
    point = {b: sp.Rational(1, i + 3) for i, b in enumerate(betas)}
    return _derivation(
        f"forward marginal after {n} steps", "Ho et al. 2020, eq. 4",
        result={"mean_coef": sp.simplify(mean / S.x_0), "variance": variance},
        expected={"mean_coef": sp.sqrt(prod), "variance": 1 - prod},
        steps=steps, point=point,
    )


# --------------------------------------------------------------------------- chapter 2
@functools.lru_cache(maxsize=None)
def posterior_by_completing_square() -> Derivation:
    r"""The posterior :math:`q(x_{t-1}\mid x_t, x_0)` from Bayes' rule by completing the square.

    .. math::
        \log q(x_{t-1}\mid x_t,x_0) = -\frac{(x_t-\sqrt{\alpha_t}x_{t-1})^2}{2\beta_t}
        -\frac{(x_{t-1}-\sqrt{\bar\alpha_{t-1}}x_0)^2}{2(1-\bar\alpha_{t-1})} + C
        = -\frac{\lambda}{2}(x_{t-1}-\tilde\mu_t)^2 + C'

    The precision :math:`\lambda` is minus twice the coefficient of :math:`x_{t-1}^2`, the mean is
    the coefficient of :math:`x_{t-1}` over :math:`\lambda`; this gives Ho et al. 2020, eq. 7:

    .. math::
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0
                    + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t

    Chapter 2.

    Returns
    -------
    Derivation
        ``result["c0"]``, ``result["ct"]`` (mean coefficients of :math:`x_0` and :math:`x_t`),
        ``result["beta_tilde"]``, and ``result["square_completed"]`` (0: what is left after
        completing the square does not depend on :math:`x_{t-1}`), written in
        :math:`(\bar\alpha_t, \bar\alpha_{t-1})` with :math:`\alpha_t = \bar\alpha_t/\bar\alpha_{t-1}`,
        :math:`\beta_t = 1-\alpha_t` (so they also hold on a respaced chain).
    """
    S = paper_symbols()
    log_likelihood = -(S.x_t - sp.sqrt(S.alpha_t) * S.x_prev) ** 2 / (2 * S.beta_t)
    log_prior = -(S.x_prev - sp.sqrt(S.alpha_bar_prev) * S.x_0) ** 2 / (2 * (1 - S.alpha_bar_prev))
    log_post = sp.expand(log_likelihood + log_prior)
    quad = sp.Poly(log_post, S.x_prev)
    a2, a1 = quad.coeff_monomial(S.x_prev ** 2), quad.coeff_monomial(S.x_prev)
    precision = sp.simplify(-2 * a2)
    mean = sp.expand(a1 / precision)
    leftover = sp.diff(log_post + precision / 2 * (S.x_prev - mean) ** 2, S.x_prev)
    c0, ct = sp.diff(mean, S.x_0), sp.diff(mean, S.x_t)
    rel = _ddim_relations()
    steps = [
        ("log q(x_t | x_{t-1}) + const", log_likelihood),
        ("log q(x_{t-1} | x_0) + const", log_prior),
        ("Bayes: log q(x_{t-1} | x_t, x_0) + const", log_post),
        ("coefficient of x_{t-1}^2", a2),
        ("coefficient of x_{t-1}", a1),
        ("precision = -2 coef(x_{t-1}^2)", precision),
        ("mean = coef(x_{t-1}) / precision", mean),
        ("d/dx_{t-1} of what is left after the square", prove_zero(leftover)),
        ("respaced step", _eq(S.alpha_t, S.alpha_bar_t / S.alpha_bar_prev)),
    ]
    return _derivation(
        "DDPM posterior q(x_{t-1} | x_t, x_0) by completing the square", "Ho et al. 2020, eq. 7",
        result={"c0": c0, "ct": ct, "beta_tilde": 1 / precision, "square_completed": leftover},
        expected={
            "c0": sp.sqrt(S.alpha_bar_prev) * S.beta_t / (1 - S.alpha_bar_t),
            "ct": sp.sqrt(S.alpha_t) * (1 - S.alpha_bar_prev) / (1 - S.alpha_bar_t),
            "beta_tilde": (1 - S.alpha_bar_prev) / (1 - S.alpha_bar_t) * S.beta_t,
            "square_completed": sp.Integer(0),
        },
        steps=steps, relations=rel,
    )


# --------------------------------------------------------------------------- chapter 3
@functools.lru_cache(maxsize=None)
def ddim_coefficients() -> Derivation:
    r"""Solve for the DDIM posterior :math:`q_\sigma(x_{t-1}\mid x_t,x_0)=N(k x_0 + m x_t,\ \sigma_t^2)`.

    Requiring that it keep the marginals, i.e. that :math:`x_t\sim N(\sqrt{\bar\alpha_t}x_0, 1-\bar\alpha_t)`
    be mapped to :math:`x_{t-1}\sim N(\sqrt{\bar\alpha_{t-1}}x_0, 1-\bar\alpha_{t-1})`, gives two equations

    .. math::
        k + m\sqrt{\bar\alpha_t} = \sqrt{\bar\alpha_{t-1}},\qquad
        m^2(1-\bar\alpha_t) + \sigma_t^2 = 1-\bar\alpha_{t-1}

    whose root with :math:`m\ge 0` is Song et al. 2021, eq. 7:

    .. math::
        m = \frac{\sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}}{\sqrt{1-\bar\alpha_t}},\qquad
        k = \sqrt{\bar\alpha_{t-1}} - \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,
            \frac{\sqrt{\bar\alpha_t}}{\sqrt{1-\bar\alpha_t}}

    Chapter 3.

    Returns
    -------
    Derivation
        ``result["k"]``, ``result["m"]`` in :math:`(\bar\alpha_t, \bar\alpha_{t-1}, \sigma_t)`.
    """
    S = paper_symbols()
    ab, abp, sigma, k, m = S.alpha_bar_t, S.alpha_bar_prev, S.sigma, S.k, S.m
    x_t = sp.sqrt(ab) * S.x_0 + sp.sqrt(1 - ab) * S.eps_prev
    x_prev = k * S.x_0 + m * x_t + sigma * S.eps
    noises = (S.eps_prev, S.eps)
    mean = gaussian_expectation(x_prev, noises)
    variance = gaussian_expectation((x_prev - mean) ** 2, noises)
    eq_mean = _eq(sp.collect(mean, S.x_0) / S.x_0, sp.sqrt(abp))
    eq_var = _eq(sp.collect(variance, m), 1 - abp)
    roots = sp.solve([eq_mean.lhs - eq_mean.rhs, eq_var.lhs - eq_var.rhs], [k, m], dict=True)
    point = _sample_point()
    chosen = [r for r in roots if sp.N(r[m].subs(point)) > 0]
    if len(chosen) != 1:  # pragma: no cover - a change in sympy.solve would land here
        raise RuntimeError(f"expected exactly one root with m > 0, got {roots}")
    root = chosen[0]
    steps = [
        ("marginal at t", _eq(S.x_t, x_t)),
        ("assumed step", _eq(S.x_prev, k * S.x_0 + m * S.x_t + sigma * S.eps)),
        ("mean matches sqrt(alpha_bar_{t-1}) x_0", eq_mean),
        ("variance matches 1 - alpha_bar_{t-1}", eq_var),
        ("both roots (k, m)", sp.Tuple(*[sp.Tuple(r[k], r[m]) for r in roots])),
        ("root with m >= 0", sp.Tuple(root[k], root[m])),
    ]
    w = sp.sqrt(1 - abp - sigma ** 2)
    return _derivation(
        "DDIM posterior coefficients from marginal matching", "Song et al. 2021, eq. 7",
        result={"k": root[k], "m": root[m]},
        expected={"k": sp.sqrt(abp) - w * sp.sqrt(ab) / sp.sqrt(1 - ab), "m": w / sp.sqrt(1 - ab)},
        steps=steps,
    )


@functools.lru_cache(maxsize=None)
def ddim_sigma_eta() -> Derivation:
    r"""The DDIM noise level :math:`\sigma_t(\eta) = \eta\sqrt{\tilde\beta_t}` in the DDIM paper's form.

    With the step variance of a (respaced) step :math:`\beta_t = 1-\bar\alpha_t/\bar\alpha_{t-1}`
    and :math:`\tilde\beta_t` from :func:`posterior_by_completing_square`,

    .. math::
        \sigma_t(\eta)^2 = \eta^2\,\tilde\beta_t
        = \eta^2\,\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\Big(1-\frac{\bar\alpha_t}{\bar\alpha_{t-1}}\Big)

    Song et al. 2021, eq. 16. :func:`ddim_sigma_eta1_is_beta_tilde` proves that :math:`\eta=1`
    turns the whole DDIM step into the DDPM posterior. Chapter 3.

    Returns
    -------
    Derivation
        ``result["sigma"]``, ``result["sigma_squared"]`` in :math:`(\bar\alpha_t, \bar\alpha_{t-1}, \eta)`.
    """
    S = paper_symbols()
    ab, abp, eta = S.alpha_bar_t, S.alpha_bar_prev, S.eta
    beta_tilde = posterior_by_completing_square().result["beta_tilde"]
    sigma = eta * sp.sqrt(beta_tilde)
    steps = [
        ("posterior variance of the respaced step", _eq(sp.Symbol(r"\tilde\beta_t"), beta_tilde)),
        ("sigma_t(eta) = eta sqrt(beta_tilde)", sigma),
        ("eta = 0: deterministic DDIM", sigma.subs(eta, 0)),
        ("eta = 1: sigma_t^2 = beta_tilde", sp.simplify((sigma ** 2).subs(eta, 1))),
    ]
    paper = eta * sp.sqrt((1 - abp) / (1 - ab)) * sp.sqrt(1 - ab / abp)
    return _derivation(
        "DDIM sigma(eta)", "Song et al. 2021, eq. 16",
        result={"sigma": sigma, "sigma_squared": sp.simplify(sigma ** 2)},
        expected={"sigma": paper, "sigma_squared": paper ** 2},
        steps=steps,
    )


@functools.lru_cache(maxsize=None)
def ddim_sigma_eta1_is_beta_tilde() -> Derivation:
    r"""With :math:`\eta = 1` the DDIM step *is* the DDPM posterior, mean and variance.

    Substituting :math:`\sigma_t = \sigma_t(1)` (:func:`ddim_sigma_eta`) into the DDIM
    coefficients :math:`k, m` (:func:`ddim_coefficients`) gives

    .. math::
        \sigma_t(1)^2 = \tilde\beta_t,\qquad
        k = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t},\qquad
        m = \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}

    with :math:`\beta_t = 1-\bar\alpha_t/\bar\alpha_{t-1}`: Ho et al. 2020, eq. 7, as claimed in
    Song et al. 2021, sec. 4.3. Chapter 3.
    """
    S = paper_symbols()
    sig1 = ddim_sigma_eta().expected["sigma"].subs(S.eta, 1)  # the paper's printed eq. 16
    dd = ddim_coefficients()
    k1, m1 = dd.result["k"].subs(S.sigma, sig1), dd.result["m"].subs(S.sigma, sig1)
    post = posterior_by_completing_square()
    steps = [
        ("sigma_t(1)", sig1),
        ("k at eta = 1", k1),
        ("m at eta = 1", m1),
    ]
    return _derivation(
        "DDIM with eta = 1 is the DDPM posterior", "Ho et al. 2020, eq. 7",
        result={"sigma_squared": sp.simplify(sig1 ** 2), "k": k1, "m": m1},
        expected={"sigma_squared": post.expected["beta_tilde"], "k": post.expected["c0"],
                  "m": post.expected["ct"]},
        steps=steps, relations=_ddim_relations(),
    )


@functools.lru_cache(maxsize=None)
def ddim_noise_matching_ddpm() -> Derivation:
    r"""The noise level that turns the DDIM step into the DDPM posterior, solved for.

    Nothing about :math:`\eta` is assumed. The three unknowns :math:`k, m, s = \sigma_t^2` of
    :math:`q_\sigma(x_{t-1}\mid x_t,x_0) = N(k x_0 + m x_t, s)` must satisfy the two
    marginal-matching equations of :func:`ddim_coefficients` and, third, give :math:`x_t` the
    weight it has in the DDPM posterior mean, :math:`m = c_t` (:func:`posterior_by_completing_square`):

    .. math::
        k + m\sqrt{\bar\alpha_t} = \sqrt{\bar\alpha_{t-1}},\quad
        m^2(1-\bar\alpha_t) + s = 1-\bar\alpha_{t-1},\quad
        m = \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}
        \ \Longrightarrow\ s = \tilde\beta_t,\ k = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}

    The unique solution is the posterior variance, and :math:`k` comes out as the posterior's
    :math:`x_0` weight without being asked for: the DDPM posterior is the member of the DDIM family
    with :math:`\sigma_t^2 = \tilde\beta_t`, which eq. 16 writes as :math:`\eta = 1`
    (Song et al. 2021, sec. 4.1; Ho et al. 2020, eq. 7). Chapter 3.

    Returns
    -------
    Derivation
        ``result["sigma_squared"]``, ``result["k"]`` in :math:`(\bar\alpha_t, \bar\alpha_{t-1})`.
    """
    S = paper_symbols()
    ab, abp, k, m = S.alpha_bar_t, S.alpha_bar_prev, S.k, S.m
    s2 = sp.Symbol("s", real=True)  # sigma_t^2, unknown
    post = posterior_by_completing_square()
    eq_mean = _eq(k + m * sp.sqrt(ab), sp.sqrt(abp))
    eq_var = _eq(m ** 2 * (1 - ab) + s2, 1 - abp)
    eq_post = _eq(m, post.result["ct"])
    roots = sp.solve([e.lhs - e.rhs for e in (eq_mean, eq_var, eq_post)], [k, m, s2], dict=True)
    if len(roots) != 1:  # pragma: no cover - linear in k and s once m is fixed
        raise RuntimeError(f"expected one solution, got {roots}")
    root = roots[0]
    steps = [
        ("mean matches sqrt(alpha_bar_{t-1}) x_0", eq_mean),
        ("variance matches 1 - alpha_bar_{t-1}", eq_var),
        ("x_t weight of the DDPM posterior mean", eq_post),
        ("solution (k, m, sigma_t^2)", sp.Tuple(root[k], root[m], root[s2])),
    ]
    return _derivation(
        "the DDIM noise level that reproduces the DDPM posterior", "Ho et al. 2020, eq. 7",
        result={"sigma_squared": root[s2], "k": root[k]},
        expected={"sigma_squared": post.expected["beta_tilde"], "k": post.expected["c0"]},
        steps=steps, relations=_ddim_relations(),
    )


@functools.lru_cache(maxsize=None)
def ddim_as_euler_ode() -> Derivation:
    r"""Deterministic DDIM is one Euler step of an ODE in rescaled variables.

    With :math:`\bar x = x/\sqrt{\bar\alpha}` and :math:`\bar\sigma = \sqrt{1-\bar\alpha}/\sqrt{\bar\alpha}`,
    the :math:`\eta = 0` step (:func:`ddim_coefficients` with :math:`\sigma_t = 0` and
    :math:`x_0 = \hat x_0`) is exactly

    .. math:: \bar x_{t-1} = \bar x_t + (\bar\sigma_{t-1} - \bar\sigma_t)\,\hat\epsilon

    an Euler step of :math:`d\bar x = \hat\epsilon(\bar x, \bar\sigma)\,d\bar\sigma`.
    Song et al. 2021, eq. 14. Chapter 3.

    Returns
    -------
    Derivation
        ``result["xbar_prev"]`` in :math:`(x_t, \hat\epsilon, \bar\alpha_t, \bar\alpha_{t-1})`.
    """
    S = paper_symbols()
    ab, abp, x_t, eps_hat = S.alpha_bar_t, S.alpha_bar_prev, S.x_t, S.eps_hat
    x0_hat = (x_t - sp.sqrt(1 - ab) * eps_hat) / sp.sqrt(ab)
    dd = ddim_coefficients()
    x_prev = (dd.result["k"] * x0_hat + dd.result["m"] * x_t).subs(S.sigma, 0)
    xbar_t = x_t / sp.sqrt(ab)
    sigma_bar = lambda a: sp.sqrt(1 - a) / sp.sqrt(a)  # noqa: E731
    xbar_prev = sp.expand(x_prev / sp.sqrt(abp))
    steps = [
        ("predicted x_0", _eq(sp.Symbol(r"\hat x_0"), x0_hat)),
        ("DDIM step, sigma_t = 0", _eq(S.x_prev, x_prev)),
        ("change of variables", _eq(sp.Symbol(r"\bar x_t"), xbar_t)),
        ("noise scale", _eq(sp.Symbol(r"\bar\sigma_t"), sigma_bar(ab))),
        ("rescaled step", _eq(sp.Symbol(r"\bar x_{t-1}"), xbar_prev)),
    ]
    return _derivation(
        "DDIM (eta = 0) as an Euler step of the probability-flow ODE", "Song et al. 2021, eq. 14",
        result={"xbar_prev": xbar_prev},
        expected={"xbar_prev": xbar_t + (sigma_bar(abp) - sigma_bar(ab)) * eps_hat},
        steps=steps,
    )


# --------------------------------------------------------------------------- chapter 4
@functools.lru_cache(maxsize=None)
def gaussian_kl() -> Derivation:
    r"""KL divergence between two 1-D Gaussians, by expectation algebra.

    With :math:`x = \mu_1 + s_1\epsilon` a draw from :math:`p = N(\mu_1, s_1^2)` and
    :math:`q = N(\mu_2, s_2^2)`,

    .. math::
        KL(p\,\|\,q) = E_p[\log p(x) - \log q(x)]
        = \log\frac{s_2}{s_1} + \frac{s_1^2 + (\mu_1-\mu_2)^2}{2 s_2^2} - \frac12

    The building block of every VLB term (Ho et al. 2020, eq. 5; Kingma & Welling 2014, app. B).
    Chapter 4.

    Returns
    -------
    Derivation
        ``result["kl"]`` in :math:`(\mu_1, \mu_2, s_1, s_2)` (standard deviations, not variances).
    """
    S = paper_symbols()
    mu1, mu2, s1, s2 = S.mu_1, S.mu_2, S.s_1, S.s_2
    x = sp.Symbol("x", real=True)

    def log_normal(x_, mu, s):
        return -sp.log(s) - sp.log(2 * sp.pi) / 2 - (x_ - mu) ** 2 / (2 * s ** 2)

    integrand = log_normal(x, mu1, s1) - log_normal(x, mu2, s2)
    draw = mu1 + s1 * S.eps
    kl = sp.simplify(gaussian_expectation(integrand.subs(x, draw), (S.eps,)))
    steps = [
        ("log p(x) - log q(x)", integrand),
        ("x = mu_1 + s_1 eps", integrand.subs(x, draw)),
        ("E over eps (E[eps] = 0, E[eps^2] = 1)", kl),
    ]
    return _derivation(
        "KL between 1-D Gaussians", "Kingma & Welling 2014, app. B",
        result={"kl": kl},
        expected={"kl": sp.log(s2 / s1) + (s1 ** 2 + (mu1 - mu2) ** 2) / (2 * s2 ** 2) - sp.Rational(1, 2)},
        steps=steps,
    )


# --------------------------------------------------------------------------- the checker
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
        (The order ``check_against(expr, symbols, fn)`` is accepted too.)
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
    if not callable(fn) and callable(symbols):  # the order written in API.md
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
