r"""The chapters' derivations: each a function that computes a result and proves it is the paper's closed form.

Every function returns a :class:`diffnotes.derive.Derivation` built by
:func:`diffnotes.derive.prove_derivation` and is cached (the proof runs once per process).
Chapters 1 (forward process), 2 (DDPM posterior), 3 (DDIM), 4 (losses) and 8 (guidance).

``gaussian_expectation`` is looked up through :mod:`diffnotes.derive.algebra` at call time, so a
change there (the mutation tests patch it) reaches these derivations too.
"""
from __future__ import annotations

import functools

import sympy as sp

from .._checks import check_int
from . import algebra
from .algebra import paper_symbols, sample_point
from .engine import Derivation, prove_derivation, prove_zero

__all__ = [
    "forward_marginal_by_induction",
    "forward_marginal_n_steps",
    "posterior_by_completing_square",
    "ddim_coefficients",
    "ddim_sigma_eta",
    "ddim_sigma_eta1_is_beta_tilde",
    "ddim_noise_matching_ddpm",
    "ddim_as_euler_ode",
    "gaussian_kl",
    "guidance_from_bayes",
    "tilted_gaussian_by_completing_square",
]


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
    mean = algebra.gaussian_expectation(x_t, noises)
    variance = algebra.gaussian_expectation((x_t - mean) ** 2, noises)
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
    return prove_derivation(
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
    mean = algebra.gaussian_expectation(x, noises)
    variance = algebra.gaussian_expectation((x - mean) ** 2, noises)
    steps += [("mean E[x | x_0]", mean), ("variance", sp.factor(variance))]
    prod = sp.Mul(*[1 - b for b in betas])
    point = {b: sp.Rational(1, i + 3) for i, b in enumerate(betas)}
    return prove_derivation(
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
    return prove_derivation(
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
    mean = algebra.gaussian_expectation(x_prev, noises)
    variance = algebra.gaussian_expectation((x_prev - mean) ** 2, noises)
    eq_mean = _eq(sp.collect(mean, S.x_0) / S.x_0, sp.sqrt(abp))
    eq_var = _eq(sp.collect(variance, m), 1 - abp)
    roots = sp.solve([eq_mean.lhs - eq_mean.rhs, eq_var.lhs - eq_var.rhs], [k, m], dict=True)
    point = sample_point()
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
    return prove_derivation(
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
    return prove_derivation(
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
    return prove_derivation(
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
    return prove_derivation(
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
    return prove_derivation(
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
    kl = sp.simplify(algebra.gaussian_expectation(integrand.subs(x, draw), (S.eps,)))
    steps = [
        ("log p(x) - log q(x)", integrand),
        ("x = mu_1 + s_1 eps", integrand.subs(x, draw)),
        ("E over eps (E[eps] = 0, E[eps^2] = 1)", kl),
    ]
    return prove_derivation(
        "KL between 1-D Gaussians", "Kingma & Welling 2014, app. B",
        result={"kl": kl},
        expected={"kl": sp.log(s2 / s1) + (s1 ** 2 + (mu1 - mu2) ** 2) / (2 * s2 ** 2) - sp.Rational(1, 2)},
        steps=steps,
    )


# --------------------------------------------------------------------------- chapter 8
@functools.lru_cache(maxsize=None)
def guidance_from_bayes() -> Derivation:
    r"""Bayes' rule for scores, classifier guidance and CFG in eps form, and CFG as a tilted score.

    With :math:`\epsilon = -\sigma_t\nabla\log p` (Tweedie), proves

    * ``bayes``: :math:`\nabla\log p(x\mid y) - \nabla\log p(x) - \nabla\log p(y\mid x) = 0` with
      :math:`\log p(y\mid x) = \log p(x\mid y) + \log p(y) - \log p(x)`;
    * ``cfg_tilt``: :math:`-\sigma_t\nabla\log\big[p(x\mid y)^{1+w}/p(x)^w\big] = (1+w)\epsilon(x,y) - w\epsilon(x)`;
    * ``cg_is_cfg``: classifier guidance with scale :math:`s` and an exact classifier equals CFG
      with :math:`w = s - 1`.

    Returns a :class:`diffnotes.derive.Derivation`. Chapter 8.
    """
    x = sp.Symbol("x_t", real=True)
    w, s, sig = sp.Symbol("w", nonnegative=True), sp.Symbol("s", positive=True), sp.Symbol("sigma_t", positive=True)
    log_c, log_u = sp.Function("log_p_x_given_y")(x), sp.Function("log_p_x")(x)
    log_py = sp.Symbol("log_p_y", real=True)
    log_y_given_x = log_c + log_py - log_u  # Bayes' rule
    eps_c, eps_u = -sig * sp.diff(log_c, x), -sig * sp.diff(log_u, x)
    tilt = (1 + w) * log_c - w * log_u
    eps_cfg = (1 + w) * eps_c - w * eps_u
    eps_cg = eps_u - s * sig * sp.diff(log_y_given_x, x)
    steps = [
        ("Bayes: log p(y | x_t)", sp.Eq(sp.Symbol(r"\log p(y\mid x_t)"), log_y_given_x)),
        ("log of the tilted density", sp.Eq(sp.Symbol(r"\log\tilde p_w"), tilt)),
        ("CFG in eps form", sp.Eq(sp.Symbol(r"\tilde\epsilon"), eps_cfg)),
        ("classifier guidance in eps form", sp.Eq(sp.Symbol(r"\hat\epsilon_s"), eps_cg)),
    ]
    return prove_derivation(
        "classifier and classifier-free guidance", "Dhariwal & Nichol 2021 eq. 14; Ho & Salimans 2022 eq. 6",
        result={"bayes": sp.diff(log_c, x), "cfg_tilt": -sig * sp.diff(tilt, x), "cg_is_cfg": eps_cg},
        expected={"bayes": sp.diff(log_u, x) + sp.diff(log_y_given_x, x), "cfg_tilt": eps_cfg,
                  "cg_is_cfg": eps_cfg.subs(w, s - 1)},
        steps=steps, point={},
    )


@functools.lru_cache(maxsize=None)
def tilted_gaussian_by_completing_square() -> Derivation:
    r"""The tilt :math:`N(m_c, v_c)^{1+w}/N(m_u, v_u)^w` is Gaussian: its mean and variance.

    Proves that :math:`\frac{d}{dx}\big[(1+w)\log N(x; m_c, v_c) - w\log N(x; m_u, v_u) - \log N(x; m_w, v_w)\big] = 0`
    for the :math:`m_w, v_w` of :func:`diffnotes.guidance.tilted_gaussian` (so the two log densities differ by a
    constant), and the shift form for equal variances. ``result["variance_gap"]`` is
    :math:`1/\lambda_t - (a^2 v_w + s^2)` for the noisy marginals :math:`N(a m, a^2 v + s^2)`, proven
    equal to :math:`-a^2 s^2 w(1+w)(v_c-v_u)^2 / (D(a^2 D + s^2))` with :math:`D = (1+w)v_u - w v_c`:
    the tilt of the noisy marginals is the noisy marginal of the tilt only when :math:`v_c = v_u`.
    Returns a :class:`diffnotes.derive.Derivation`. Chapter 8.
    """
    x, mc, mu = sp.symbols("x m_c m_u", real=True)
    vc, vu, a, s2 = sp.symbols("v_c v_u a s^2", positive=True)
    w = sp.Symbol("w", nonnegative=True)

    def log_normal(x, m, v):
        return -(x - m) ** 2 / (2 * v) - sp.log(2 * sp.pi * v) / 2

    precision = (1 + w) / vc - w / vu
    v_w = 1 / precision
    m_w = v_w * ((1 + w) * mc / vc - w * mu / vu)
    log_tilt = (1 + w) * log_normal(x, mc, vc) - w * log_normal(x, mu, vu)
    # noisy marginals N(a m, a^2 v + s^2): tilt them, compare with the noisy tilt N(a m_w, a^2 v_w + s^2)
    Vc, Vu = a**2 * vc + s2, a**2 * vu + s2
    gap = 1 / ((1 + w) / Vc - w / Vu) - (a**2 * v_w + s2)
    D = (1 + w) * vu - w * vc  # v_c v_u / v_w
    gap_closed = -a**2 * s2 * w * (1 + w) * (vc - vu) ** 2 / (D * (a**2 * D + s2))
    steps = [
        ("log of the tilt", sp.Eq(sp.Symbol(r"\log\tilde p_w(x)"), log_tilt)),
        ("its precision 1/v_w", precision),
        ("its mean m_w", m_w),
        ("noisy tilt variance minus noisy variance of the tilt", gap_closed),
    ]
    return prove_derivation(
        "tilted Gaussian", "chapter 8 (completing the square)",
        result={"dlog_ratio": sp.diff(log_tilt - log_normal(x, m_w, v_w), x),
                "shift": m_w.subs(vu, vc), "same_variance": v_w.subs(vu, vc),
                "variance_gap": gap, "variance_gap_equal": gap.subs(vu, vc)},
        expected={"dlog_ratio": 0, "shift": mc + w * (mc - mu), "same_variance": vc,
                  "variance_gap": gap_closed, "variance_gap_equal": 0},
        steps=steps, point={},
    )
