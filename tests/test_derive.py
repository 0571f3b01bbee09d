"""Tests for diffnotes.derive: every SymPy derivation is proven (residual exactly 0), every derived
expression agrees with the torch implementation at random points (check_against), and the
checker and the prover really reject wrong formulas."""
import math
import re

import pytest
import sympy as sp
import torch

from diffnotes import derive
from diffnotes.derive import check_against, paper_symbols, prove_zero
from diffnotes.forward import (
    eps_from_x0,
    posterior_mean_coefs,
    posterior_variance,
    q_mean_std,
    q_step,
)
from diffnotes.samplers import ddim_sigma, ddim_step, ddpm_step

S = paper_symbols()
F64 = torch.float64
AB, ABP = S.alpha_bar_t, S.alpha_bar_prev

# The domain of one (possibly respaced) sampler step: 0 < alpha_bar_t < alpha_bar_prev < 1.
# The lower bound 0.01 keeps 1/sqrt(alpha_bar) moderate so float64 rounding stays far below rtol.
STEP_DOMAIN = {"alpha_bar_t": (0.01, 0.99), "alpha_bar_prev": (0.01, 0.99)}


def ordered(ab, abp, *rest):
    return ab < abp


def ddim_room(ab, abp, sigma):
    """sigma_t^2 < 1 - alpha_bar_prev: the DDIM step is defined (eq. 12)."""
    return (ab < abp) & (sigma ** 2 < 1 - abp)


def col(v):
    """A [n] tensor as a batch of n one-dimensional samples, shape [n, 1]."""
    return v.reshape(-1, 1)


DERIVATIONS = [
    derive.forward_marginal_by_induction,
    lambda: derive.forward_marginal_n_steps(1),
    lambda: derive.forward_marginal_n_steps(3),
    derive.posterior_by_completing_square,
    derive.ddim_coefficients,
    derive.ddim_sigma_eta,
    derive.ddim_sigma_eta1_is_beta_tilde,
    derive.ddim_noise_matching_ddpm,
    derive.ddim_as_euler_ode,
    derive.gaussian_kl,
]


# --------------------------------------------------------------------------- the proofs
@pytest.mark.parametrize("make", DERIVATIONS)
def test_every_derivation_holds_with_residual_exactly_zero(make):
    d = make()
    assert d.holds()
    assert set(d.residual) == set(d.result) == set(d.expected)
    for key, r in d.residual.items():
        assert r == sp.Integer(0), (d.name, key, r)
    assert d.steps and all(isinstance(label, str) for label, _ in d.steps)


def test_results_are_written_in_independent_symbols():
    # Dependent symbols (alpha_t, beta_t, alpha_bar_t in the induction) are eliminated, so the
    # results can be lambdified against functions of the independent ones.
    post = derive.posterior_by_completing_square()
    for key in ("c0", "ct", "beta_tilde"):
        assert post[key].free_symbols == {AB, ABP}
    dd = derive.ddim_coefficients()
    assert dd["k"].free_symbols == {AB, ABP, S.sigma}
    assert dd["m"].free_symbols == {AB, ABP, S.sigma}
    ind = derive.forward_marginal_by_induction()
    assert set().union(*(e.free_symbols for e in ind.result.values())) == {S.alpha_t, ABP}
    assert derive.ddim_sigma_eta()["sigma"].free_symbols == {AB, ABP, S.eta}


def test_pinned_closed_forms_at_a_rational_point():
    # Exact values at alpha_bar_t = 3/10, alpha_bar_prev = 1/2 (so beta_t = 2/5), sigma = 1/5.
    pt = {AB: sp.Rational(3, 10), ABP: sp.Rational(1, 2), S.sigma: sp.Rational(1, 5)}
    post = derive.posterior_by_completing_square()
    assert sp.nsimplify(post["beta_tilde"].subs(pt)) == sp.Rational(2, 7)  # (1/2)/(7/10) * 2/5
    assert sp.simplify(post["c0"].subs(pt) - sp.sqrt(2) * sp.Rational(2, 7)) == 0
    dd = derive.ddim_coefficients()
    assert sp.simplify(dd["m"].subs(pt) - sp.sqrt(sp.Rational(46, 70))) == 0  # sqrt(0.46 / 0.7)


def test_derivations_are_cached():
    assert derive.ddim_coefficients() is derive.ddim_coefficients()
    assert derive.forward_marginal_n_steps(3) is derive.forward_marginal_n_steps(3)


def test_ddim_picks_the_root_with_positive_m_and_the_other_root_is_rejected():
    d = derive.ddim_coefficients()
    roots = d.steps[4][1]
    assert len(roots) == 2
    wrong_m = [m for _, m in roots if prove_zero(m - d["m"]) != 0]
    assert len(wrong_m) == 1
    assert prove_zero(wrong_m[0] + d["m"]) == 0  # the rejected root is -m


def test_eta_zero_gives_zero_noise_and_eta_one_gives_beta_tilde():
    sig = derive.ddim_sigma_eta()["sigma"]
    assert sig.subs(S.eta, 0) == 0
    beta_tilde = derive.posterior_by_completing_square()["beta_tilde"]
    assert prove_zero(sig.subs(S.eta, 1) ** 2 - beta_tilde) == 0


def test_gaussian_expectation_moments():
    e1, e2 = sp.symbols("e1 e2", real=True)
    a, b = sp.symbols("a b", real=True)
    assert derive.gaussian_expectation(e1 ** 4, [e1]) == 3
    assert derive.gaussian_expectation(e1 ** 6, [e1]) == 15
    assert derive.gaussian_expectation(e1 ** 3 + e1 * e2, [e1, e2]) == 0
    assert derive.gaussian_expectation(e1 ** 2 * e2 ** 2, [e1, e2]) == 1
    assert sp.expand(derive.gaussian_expectation((a + b * e1) ** 2, [e1]) - (a ** 2 + b ** 2)) == 0


def test_prove_zero_proves_sign_dependent_identities_and_rejects_false_ones():
    w = sp.sqrt(1 - ABP - S.sigma ** 2)
    # True only with the signs of the domain: both factors under the root are negative.
    assert prove_zero(sp.sqrt((ABP + S.sigma ** 2 - 1) / (AB - 1)) - w / sp.sqrt(1 - AB)) == 0
    assert prove_zero(sp.sqrt(AB) * sp.sqrt(1 - AB) - sp.sqrt(AB - AB ** 2)) == 0
    # False identities keep a non-zero residual.
    assert prove_zero(sp.sqrt(1 - AB) - (1 - sp.sqrt(AB))) != 0
    assert prove_zero(sp.sqrt(AB) + sp.sqrt(1 - AB) - 1) != 0
    assert prove_zero(w / sp.sqrt(1 - AB) - sp.sqrt(1 - ABP) / sp.sqrt(1 - AB)) != 0
    assert prove_zero(sp.log(S.s_2 / S.s_1) - sp.log(S.s_2) + sp.log(S.s_1)) == 0


def test_prove_zero_rejects_what_it_cannot_handle():
    with pytest.raises(ValueError, match="nested"):
        prove_zero(sp.sqrt(1 + sp.sqrt(AB)) - 1)
    with pytest.raises(ValueError, match="only square roots"):
        prove_zero(AB ** sp.Rational(1, 3) - 1)
    with pytest.raises(ValueError, match="sample point"):
        prove_zero(sp.sqrt(1 - sp.Symbol("u")) - 1)


def test_derivation_display():
    d = derive.posterior_by_completing_square()
    tex = d._repr_latex_()
    assert tex.startswith("$") and r"\begin{aligned}" in tex and r"\bar\alpha_{t-1}" in tex
    assert "holds" in repr(d)
    assert d["c0"] is d.result["c0"]
    wrong = derive.prove_derivation("wrong", "nowhere", {"v": 1 - sp.sqrt(AB)}, {"v": 1 - AB}, [])
    assert not wrong.holds() and "DOES NOT HOLD" in repr(wrong)


def test_latex_labels_keep_exponents_and_subscripts():
    # Regression: "^" used to be replaced by a space, so chapter 2 printed "coefficient of x_{t-1} 2".
    tex = derive.latex_text("coefficient of x_{t-1}^2")
    assert tex == r"\text{coefficient of }x_{t-1}^2"
    expected = r"\eta\text{ = 1: }\sigma_t^2\text{ = }\tilde\beta_t"
    assert derive.latex_text("eta = 1: sigma_t^2 = beta_tilde") == expected
    assert derive.latex_text("precision = -2 coef(x_{t-1}^2)").endswith(r"\operatorname{coef}(x_{t-1}^2)")
    assert derive.latex_text("mean matches sqrt(alpha_bar_{t-1}) x_0").endswith(r"\sqrt{\bar\alpha_{t-1}}\text{ }x_0")
    # plain words stay text, with LaTeX's special characters escaped (no stray ^ or _ in text mode)
    assert derive.latex_text("residual square_completed") == r"\text{residual square\_completed}"
    assert derive.latex_text("Kingma & Welling 2014, 50%") == r"\text{Kingma \& Welling 2014, 50\%}"
    assert derive.latex_text("a ^ b") == r"\text{a \^{} b}"
    # the squared term is shown as a square in the chapter-2 derivation, and every label of every
    # derivation gives balanced braces with no ^ or _ inside a \text{...}
    post = derive.posterior_by_completing_square().to_latex()
    assert r"\text{coefficient of }x_{t-1}^2" in post and "x\\_\\{t-1\\} 2" not in post
    for make in DERIVATIONS:
        for label, _ in make().steps:
            tex = derive.latex_text(label)
            assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}"), label
            for text in re.findall(r"\\text\{((?:[^{}]|\\[{}])*)\}", tex):
                assert not re.search(r"(?<!\\)[_^]", text), (label, tex)


def test_noise_matching_ddpm_solves_for_beta_tilde_and_equals_eq16_at_eta_1():
    d = derive.ddim_noise_matching_ddpm()
    post = derive.posterior_by_completing_square()
    assert prove_zero(d["sigma_squared"] - post["beta_tilde"]) == 0
    assert prove_zero(d["k"] - post["c0"]) == 0
    paper_eta1 = derive.ddim_sigma_eta().expected["sigma"].subs(S.eta, 1)
    assert prove_zero(d["sigma_squared"] - paper_eta1 ** 2) == 0
    # and not at another eta
    assert prove_zero(d["sigma_squared"] - (paper_eta1 / 2) ** 2) != 0


def test_n_steps_argument_is_validated():
    with pytest.raises(ValueError, match="n must be an integer in"):
        derive.forward_marginal_n_steps(0)


# --------------------------------------------------------------------------- against the code
def test_posterior_coefficients_match_forward_posterior_mean_coefs():
    post = derive.posterior_by_completing_square()
    for i, key in enumerate(("c0", "ct")):
        report = check_against(
            post[key], lambda ab, abp, i=i: posterior_mean_coefs(ab, abp, 1 - ab / abp)[i],
            [AB, ABP], domain=STEP_DOMAIN, constraint=ordered,
        )
        assert report.n == 200 and report.max_rel_error < 1e-12


def test_beta_tilde_matches_forward_posterior_variance():
    check_against(
        derive.posterior_by_completing_square()["beta_tilde"],
        lambda ab, abp: posterior_variance(ab, abp, 1 - ab / abp),
        [AB, ABP], domain=STEP_DOMAIN, constraint=ordered,
    )


def _ddim_implied_coefs(ab, abp, sigma):
    """(k, m) of samplers.ddim_step: its output, without noise, for (x_0, x_t) = (1, 0) and (0, 1),
    with eps_hat the noise that (x_t, x_0) imply."""
    zeros, ones = torch.zeros_like(col(ab)), torch.ones_like(col(ab))
    out = []
    for x0, xt in ((ones, zeros), (zeros, ones)):
        eps_hat = eps_from_x0(xt, x0, ab)
        out.append(ddim_step(xt, eps_hat, ab, abp, sigma_t=sigma, noise=zeros)[:, 0])
    return out


def test_ddim_coefficients_match_samplers_ddim_step():
    dd = derive.ddim_coefficients()
    domain = dict(STEP_DOMAIN, sigma=(0.0, 1.0))
    for i, key in enumerate(("k", "m")):
        check_against(dd[key], lambda ab, abp, s, i=i: _ddim_implied_coefs(ab, abp, s)[i],
                      [AB, ABP, S.sigma], domain=domain, constraint=ddim_room)


def test_ddim_sigma_matches_samplers_ddim_sigma():
    check_against(derive.ddim_sigma_eta()["sigma"], ddim_sigma, [AB, ABP, S.eta],
                  domain=dict(STEP_DOMAIN, eta=(0.0, 2.0)), constraint=ordered)


def test_ddim_eta1_step_is_the_ddpm_step():
    # The derivation says k(sigma(1)) = c0 and m(sigma(1)) = ct; the code's ddim_step with
    # sigma_t = ddim_sigma(eta=1) and its ddpm_step must both reproduce them.
    d = derive.ddim_sigma_eta1_is_beta_tilde()

    def ddpm_implied(ab, abp, i):
        zeros, ones = torch.zeros_like(col(ab)), torch.ones_like(col(ab))
        x0, xt = ((ones, zeros), (zeros, ones))[i]
        return ddpm_step(xt, eps_from_x0(xt, x0, ab), ab, abp, noise=zeros)[:, 0]

    for i, key in enumerate(("k", "m")):
        check_against(d[key], lambda ab, abp, i=i: _ddim_implied_coefs(ab, abp, ddim_sigma(ab, abp, 1.0))[i],
                      [AB, ABP], domain=STEP_DOMAIN, constraint=ordered)
        check_against(d[key], lambda ab, abp, i=i: ddpm_implied(ab, abp, i),
                      [AB, ABP], domain=STEP_DOMAIN, constraint=ordered)


def test_ddim_euler_form_matches_ddim_step():
    d = derive.ddim_as_euler_ode()
    check_against(
        d["xbar_prev"],
        lambda xt, e, ab, abp: ddim_step(col(xt), col(e), ab, abp)[:, 0] / torch.sqrt(abp),
        [S.x_t, S.eps_hat, AB, ABP],
        domain=dict(STEP_DOMAIN, x_t=(-3.0, 3.0), eps_hat=(-3.0, 3.0)),
        constraint=lambda xt, e, ab, abp: ab < abp,
    )


def test_forward_marginal_n_steps_matches_iterated_q_step():
    n = 3
    d = derive.forward_marginal_n_steps(n)
    betas = sp.symbols(f"beta_1:{n + 1}", positive=True)

    def mean_coef(*b):
        x = torch.ones_like(b[0])
        for beta in b:
            x = q_step(x, beta, eps=torch.zeros_like(x))
        return x

    def variance(*b):
        # x_n is linear in the noises; the coefficient of eps_i is the chain run from x_0 = 0
        # with eps_i = 1 and every other noise 0, and the variance is the sum of their squares.
        total = torch.zeros_like(b[0])
        for i in range(n):
            x = torch.zeros_like(b[0])
            for j, beta in enumerate(b):
                x = q_step(x, beta, eps=torch.full_like(x, float(i == j)))
            total = total + x ** 2
        return total

    check_against(d["mean_coef"], mean_coef, betas)
    check_against(d["variance"], variance, betas)


def test_forward_marginal_induction_matches_q_step_and_q_mean_std():
    d = derive.forward_marginal_by_induction()
    syms = [S.alpha_t, ABP]

    def step_mean(a, abp):  # mean of x_{t-1} is sqrt(abp) x_0 with x_0 = 1; one step with eps = 0
        x = torch.sqrt(abp)
        return q_step(x, 1 - a, eps=torch.zeros_like(x))

    def step_variance(a, abp):  # coefficient of eps' (carried by the step) and of eps, squared
        carried = q_step(torch.sqrt(1 - abp), 1 - a, eps=torch.zeros_like(a))
        fresh = q_step(torch.zeros_like(a), 1 - a, eps=torch.ones_like(a))
        return carried ** 2 + fresh ** 2

    check_against(d["mean_coef"], step_mean, syms)
    check_against(d["variance"], step_variance, syms)
    # ... and the closed form of q(x_t | x_0) in forward.q_mean_std, with alpha_bar_t = alpha_t abp.
    check_against(d["mean_coef"], lambda a, abp: q_mean_std(torch.ones_like(a), a * abp)[0], syms)
    check_against(d["variance"], lambda a, abp: q_mean_std(torch.ones_like(a), a * abp)[1] ** 2, syms)


def test_gaussian_kl_matches_likelihood_normal_kl():
    from diffnotes.likelihood import normal_kl

    d = derive.gaussian_kl()
    check_against(
        d["kl"],
        lambda m1, m2, s1, s2: normal_kl(m1, 2 * torch.log(s1), m2, 2 * torch.log(s2)),
        [S.mu_1, S.mu_2, S.s_1, S.s_2],
        domain={"mu_1": (-2, 2), "mu_2": (-2, 2), "s_1": (0.1, 3), "s_2": (0.1, 3)},
    )


def test_gaussian_kl_matches_numerical_integration():
    # Independent of the closed form: KL = int p (log p - log q) by scipy quadrature (abs. error
    # ~1e-10 for these smooth integrands), at a few points.
    from scipy import integrate, stats

    def kl_quad(m1, m2, s1, s2):
        vals = []
        for a, b, c, e in zip(m1.tolist(), m2.tolist(), s1.tolist(), s2.tolist()):
            p, q = stats.norm(a, c), stats.norm(b, e)
            f = lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x))  # noqa: E731
            vals.append(integrate.quad(f, a - 12 * c, a + 12 * c, epsabs=1e-12, epsrel=1e-12)[0])
        return torch.tensor(vals, dtype=F64)

    check_against(derive.gaussian_kl()["kl"], kl_quad, [S.mu_1, S.mu_2, S.s_1, S.s_2],
                  domain={"mu_1": (-1, 1), "mu_2": (-1, 1), "s_1": (0.5, 2), "s_2": (0.5, 2)},
                  n=6, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- the checker itself
def test_check_against_rejects_the_sqrt_variance_bug():
    # The popular bug: std sqrt(1 - alpha_bar) mistaken for variance 1 - sqrt(alpha_bar).
    d = derive.forward_marginal_by_induction()
    with pytest.raises(AssertionError, match="disagrees"):
        check_against(d["variance"], lambda a, abp: 1 - torch.sqrt(a * abp), [S.alpha_t, ABP])


def test_check_against_rejects_ddim_m_that_forgets_sigma():
    m = derive.ddim_coefficients()["m"]
    with pytest.raises(AssertionError, match="max rel error"):
        check_against(m, lambda ab, abp, s: torch.sqrt((1 - abp) / (1 - ab)), [AB, ABP, S.sigma],
                      domain=dict(STEP_DOMAIN, sigma=(0.05, 1.0)), constraint=ddim_room)


def test_check_against_tolerance_is_meaningful():
    # A relative perturbation of 1e-8 passes at rtol=1e-7 and fails at the default rtol=1e-10.
    expr = derive.posterior_by_completing_square()["beta_tilde"]
    wrong = lambda ab, abp: posterior_variance(ab, abp, 1 - ab / abp) * (1 + 1e-8)  # noqa: E731
    check_against(expr, wrong, [AB, ABP], domain=STEP_DOMAIN, constraint=ordered, rtol=1e-7)
    with pytest.raises(AssertionError):
        check_against(expr, wrong, [AB, ABP], domain=STEP_DOMAIN, constraint=ordered)


def test_check_against_rejects_nan_from_the_torch_side():
    with pytest.raises(AssertionError):
        check_against(AB, lambda ab: torch.full_like(ab, math.nan), [AB])


def test_check_against_respects_domain_constraint_and_generator():
    seen = {}

    def record(ab, abp, s):
        seen["pts"] = (ab.clone(), abp.clone(), s.clone())
        return _ddim_implied_coefs(ab, abp, s)[1]

    report = check_against(derive.ddim_coefficients()["m"], record, [AB, ABP, S.sigma], n=50,
                           domain=dict(STEP_DOMAIN, sigma=(0.0, 1.0)), constraint=ddim_room,
                           generator=torch.Generator().manual_seed(3))
    ab, abp, s = seen["pts"]
    assert ab.dtype == F64 and ab.shape == (50,) and report.n == 50
    assert bool((ab < abp).all()) and bool((s ** 2 < 1 - abp).all())
    assert bool((ab > 0.01).all()) and bool((abp < 0.99).all())
    assert set(report.worst_point) == {"alpha_bar_t", "alpha_bar_prev", "sigma"}


def test_check_against_accepts_symbols_before_fn_and_names():
    check_against(1 - AB, [AB], lambda ab: 1 - ab)
    check_against(1 - AB, lambda ab: 1 - ab, ["alpha_bar_t"], domain={AB: (0.2, 0.3)})


def test_check_against_errors():
    with pytest.raises(ValueError, match="missing"):
        check_against(AB * ABP, lambda ab: ab, [AB])
    with pytest.raises(ValueError, match=r"domain\['alpha_bar_t'\] must be a finite interval"):
        check_against(AB, lambda ab: ab, [AB], domain={"alpha_bar_t": (1.0, 0.0)})
    with pytest.raises(ValueError, match="not in symbols"):
        check_against(AB, lambda ab: ab, [AB], domain={"sigma": (0.0, 1.0)})
    with pytest.raises(ValueError, match="constraint accepted only"):
        check_against(AB, lambda ab: ab, [AB], constraint=lambda ab: ab > 2)
    with pytest.raises(ValueError, match="expr is not finite"):
        check_against(sp.log(AB - sp.Rational(1, 2)), lambda ab: ab, [AB])  # log < 0 for ab < 1/2
    with pytest.raises(ValueError, match="fn must be callable"):
        check_against(AB, 3, [AB])
    with pytest.raises(ValueError, match="one value per point"):
        check_against(AB, lambda ab: torch.zeros(3), [AB], n=5)


def test_summary_escapes_the_source_and_shows_the_zero_residual():
    d = derive.gaussian_kl()
    tex = d.summary_latex()
    assert r"Kingma \& Welling" in tex          # a bare & would be an alignment tab inside `aligned`
    assert tex.endswith(r"&\quad 0\end{aligned}") and tex.count("&") - tex.count(r"\&") == len(d.expected) + 1
    assert d._repr_latex_() == f"$\\displaystyle {tex}$"


def test_show_aligned_displays_one_block(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    derive.show_aligned(r"a &= b", r"a - b &= 0")
    assert shown[0].data == r"\begin{aligned}a &= b\\ a - b &= 0\end{aligned}"
    S = derive.paper_symbols()
    derive.show_aligned((r"\text{res}", S.alpha_bar_t - S.alpha_bar_t), ("q", S.alpha_bar_t), sep=" &= ")
    assert shown[1].data == r"\begin{aligned}\text{res} &= 0\\ q &= \bar\alpha_t\end{aligned}"
    derive.show_aligned(("q", S.alpha_bar_t), names={S.alpha_bar_t: "A"})
    assert shown[2].data == r"\begin{aligned}q: &\quad A\end{aligned}"
