r"""The proof engine: :func:`prove_zero`, and the :class:`Derivation` record that :func:`prove_derivation` builds.

A derivation *computes* a result from its premises (Bayes' rule, matching moments, composing
Gaussian steps, ...) and proves it equal to the closed form printed in the paper.
:func:`prove_derivation` returns a :class:`Derivation`: the intermediate steps to show in a chapter,
the result, the published form, and the residual ``result - expected``, which is exactly ``0`` when
the identity is proven. A chapter shows and asserts in two lines::

    d = derive.ddim_coefficients()
    d            # renders the steps in Jupyter
    assert d.holds()

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
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import sympy as sp

from .algebra import sample_point
from .display import latex_text, paper_latex

__all__ = ["Derivation", "prove_derivation", "prove_zero"]


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
        lines = [rf"{latex_text(label)}: &\quad {paper_latex(e)}" for label, e in rows]
        return r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"

    def summary_latex(self) -> str:
        """The short form a chapter shows: each result as the paper prints it, then the residual
        ``derived - printed`` that :func:`prove_zero` reduced (``0`` for every key when it holds)."""
        lines = [rf"{latex_text(key)}: &\quad {paper_latex(e)}" for key, e in self.expected.items()]
        if self.holds():
            keys = ", ".join(self.residual)
            lines.append(rf"\text{{derived}} - {latex_text(self.source)} \ ({latex_text(keys)}): &\quad 0")
        else:
            lines += [rf"\text{{residual}} \ {latex_text(key)}: &\quad {paper_latex(e)}" for key, e in self.residual.items()]
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


def prove_derivation(name, source, result, expected, steps, relations=None, point=None) -> Derivation:
    """Build a :class:`Derivation`, proving ``result[k] == expected[k]`` for every key.

    ``result`` and ``expected`` map the same keys to SymPy expressions (the derived one and the form
    printed at ``source``); ``steps`` are ``(label, expression)`` pairs to display; ``relations``
    substitutes dependent symbols before the proof; ``point`` is where :func:`prove_zero` reads the
    signs under square roots (default :func:`diffnotes.derive.sample_point`). Each residual is
    :func:`prove_zero` of ``result[k] - expected[k]``; each shown result is its tidied form.
    """
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
        point = sample_point()
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
    point = sample_point() if point is None else dict(point)
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

