"""Tests for diffnotes.likelihood: the Gaussian KL, the discretised decoder, the VLB terms and the
bound, properties first, then Monte-Carlo and quadrature checks, pinned numbers and error messages.

Monte-Carlo tolerances: an estimate from n independent draws is compared with its exact value
within 4 standard errors (SE = sample std / sqrt(n)); a correct implementation fails such a check
with probability ~6e-5, and the seeds are fixed, so the tests are deterministic.
"""
import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_ndtr

from diffnotes import likelihood as L
from diffnotes.forward import posterior_mean, q_sample, x0_from_eps
from diffnotes.oracles import PointSet
from diffnotes.schedules import Schedule, cosine_schedule, linear_schedule

from conftest import gen
from conftest import images8 as images

F64 = torch.float64
GRID = torch.arange(256, dtype=F64) / 127.5 - 1.0  # the 256 values of 8-bit data in [-1, 1]
H = 1.0 / 255.0  # half bin width
N_SE = 4.0


finite = st.floats(-5.0, 5.0, allow_nan=False)
logvars = st.floats(-8.0, 4.0, allow_nan=False)


# =========================================================================== normal_kl
@settings(deadline=None, max_examples=30)
@given(m=finite, lv=logvars)
def test_normal_kl_is_exactly_zero_for_equal_gaussians(m, lv):
    assert L.normal_kl(torch.tensor(m, dtype=F64), lv, m, lv).item() == 0.0


@settings(deadline=None, max_examples=40)
@given(m1=finite, lv1=logvars, m2=finite, lv2=logvars)
def test_normal_kl_is_nonnegative_and_matches_torch_distributions(m1, lv1, m2, lv2):
    kl = L.normal_kl(torch.tensor(m1, dtype=F64), torch.tensor(lv1, dtype=F64), m2, lv2).item()
    assert kl >= 0.0
    p = torch.distributions.Normal(torch.tensor(m1, dtype=F64), torch.tensor(math.exp(lv1 / 2), dtype=F64))
    q = torch.distributions.Normal(torch.tensor(m2, dtype=F64), torch.tensor(math.exp(lv2 / 2), dtype=F64))
    ref = torch.distributions.kl_divergence(p, q).item()
    assert kl == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_normal_kl_matches_a_monte_carlo_estimate_of_the_log_ratio():
    m1, lv1, m2, lv2 = 0.3, math.log(0.5), -0.2, math.log(2.0)
    n = 200_000
    y = m1 + math.exp(lv1 / 2) * torch.randn(n, generator=gen(2), dtype=F64)
    log_ratio = (-0.5 * lv1 - (y - m1) ** 2 / (2 * math.exp(lv1))) - (-0.5 * lv2 - (y - m2) ** 2 / (2 * math.exp(lv2)))
    se = log_ratio.std().item() / math.sqrt(n)
    kl = L.normal_kl(torch.tensor(m1, dtype=F64), lv1, m2, lv2).item()
    assert abs(log_ratio.mean().item() - kl) < N_SE * se


def test_normal_kl_pinned_value_broadcasting_and_precision_for_close_variances():
    # KL(N(0,1) || N(1,2)) = 0.5 (log 2 + 1/2 + 1/2 - 1) = 0.5 log 2
    assert L.normal_kl(torch.tensor(0.0, dtype=F64), 0.0, 1.0, math.log(2.0)).item() == pytest.approx(
        0.5 * math.log(2.0), rel=1e-15)
    out = L.normal_kl(torch.zeros(3, 1, dtype=F64), torch.zeros(1, 4, dtype=F64), 0.0, 0.0)
    assert out.shape == (3, 4)
    # logvar differing by d = 1e-9: KL = (e^d - 1 - d)/2 = d^2/4 + O(d^3), which naive 0.5*(e^d - 1 - d) loses
    d = 1e-9
    assert L.normal_kl(torch.tensor(0.0, dtype=F64), d, 0.0, 0.0).item() == pytest.approx(d * d / 4, rel=1e-6)


def test_normal_kl_errors():
    with pytest.raises(ValueError, match="broadcast"):
        L.normal_kl(torch.zeros(3), torch.zeros(4), 0.0, 0.0)
    with pytest.raises(ValueError, match="logvar2 must be finite"):
        L.normal_kl(torch.zeros(3), 0.0, 0.0, torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="at least one tensor"):
        L.normal_kl(0.0, 0.0, 0.0, 0.0)


# =========================================================================== decoder
def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    r"""A fast approximation of the standard normal CDF :math:`\Phi(x)`.

    .. math:: \Phi(x) \approx \tfrac12\left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)

    Page 1977 (the tanh approximation also behind the GELU of Hendrycks & Gimpel 2016, sec. 2); the
    original DDPM and improved-DDPM code compute their discretised decoder with it. Its absolute
    error is below :math:`2\cdot 10^{-4}` everywhere, but its relative error in the tails is
    large, so :func:`diffnotes.likelihood.discretized_gaussian_log_likelihood` uses the exact :math:`\Phi` instead.
    Kept here, beside its test, for comparison with those numbers (no chapter uses it).
    """
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def test_approx_standard_normal_cdf_error_bound():
    x = torch.linspace(-8, 8, 16001, dtype=F64)
    err = (approx_standard_normal_cdf(x) - torch.special.ndtr(x)).abs().max().item()
    assert 1e-5 < err < 2e-4  # documented bound; and it really is an approximation


@settings(deadline=None, max_examples=25)
@given(mean=st.floats(-3.0, 3.0), log_scale=st.floats(-9.0, 2.0))
def test_discretized_probabilities_of_all_256_bins_sum_to_one(mean, log_scale):
    x = GRID.reshape(1, 256)
    logp = L.discretized_gaussian_log_likelihood(x, means=torch.tensor(mean, dtype=F64),
                                                 log_scales=torch.tensor(log_scale, dtype=F64))
    assert torch.isfinite(logp).all()
    assert bool((logp <= 0).all())
    assert torch.logsumexp(logp, dim=1).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_discretized_interior_bins_approach_density_times_bin_width(scale):
    # Midpoint rule: P = 2h f(x) + E with |E| <= (h^3/3) max|f''| on the bin, f the N(mu, s^2) pdf and
    # f''(y) = f(y) (z^2 - 1)/s^2 with z = (y - mu)/s; the bound is evaluated on a fine grid (x1.05).
    mu = 0.1
    x = GRID[1:-1].reshape(1, -1)
    p = L.discretized_gaussian_log_likelihood(x, means=torch.tensor(mu, dtype=F64),
                                              log_scales=torch.tensor(math.log(scale), dtype=F64)).exp()[0]
    pdf = lambda y: torch.exp(-0.5 * ((y - mu) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))  # noqa: E731
    approx = 2 * H * pdf(GRID[1:-1])
    u = torch.linspace(-1, 1, 21, dtype=F64)
    ys = GRID[1:-1, None] + H * u[None]
    f2 = (pdf(ys) * (((ys - mu) / scale) ** 2 - 1).abs() / scale**2).max(1).values
    bound = 1.05 * H**3 / 3 * f2 + 1e-15
    assert bool(((p - approx).abs() <= bound).all())
    # within 2 standard deviations the relative error is (h/s)^2 |z^2 - 1| / 6 <= (h/s)^2 / 2 (+ higher order)
    near = ((GRID[1:-1] - mu) / scale).abs() <= 2
    assert ((p - approx).abs() / approx)[near].max().item() < 0.6 * (H / scale) ** 2


def _mp_log_bin(k, mean, scale):
    """log P(bin k) to 60 digits with mpmath (upper tail computed with the survival function)."""
    mpmath.mp.dps = 60
    x = mpmath.mpf(k) / mpmath.mpf(127.5) - 1
    lo = -mpmath.inf if k == 0 else (x - mpmath.mpf(1) / 255 - mean) / scale
    hi = mpmath.inf if k == 255 else (x + mpmath.mpf(1) / 255 - mean) / scale
    if lo > 0:
        return float(mpmath.log(mpmath.ncdf(-lo) - mpmath.ncdf(-hi)))
    return float(mpmath.log(mpmath.ncdf(hi) - mpmath.ncdf(lo)))


@pytest.mark.parametrize("k,mean,scale", [
    (128, 0.9, 0.01),      # ~90 sigma to the left of the mean: P ~ e^-3985, underflows as a probability
    (10, -0.3, 1e-3),      # far right tail
    (200, -0.9, 0.02),     # far left tail
    (0, 0.5, 0.01),        # edge bin x = -1, far from the mean
    (255, -0.5, 0.01),     # edge bin x = +1, far from the mean
    (100, 0.2, 3.0),       # narrow bin relative to the scale
    (100, -0.2, 1e-6),
    (128, 0.0, 100.0),
    (37, 37 / 127.5 - 1, 0.004),  # mean at the bin centre
])
def test_discretized_log_likelihood_matches_high_precision_reference_in_the_tails(k, mean, scale):
    x = torch.tensor([[k / 127.5 - 1.0]], dtype=F64)
    got = L.discretized_gaussian_log_likelihood(x, means=torch.tensor([[mean]], dtype=F64),
                                                log_scales=torch.tensor([[math.log(scale)]], dtype=F64)).item()
    ref = _mp_log_bin(k, mpmath.mpf(mean), mpmath.exp(mpmath.mpf(math.log(scale))))
    assert got == pytest.approx(ref, rel=1e-11, abs=1e-13)
    # float32 keeps ~6 significant digits instead of returning log(0) = -inf
    got32 = L.discretized_gaussian_log_likelihood(x.float(), means=torch.tensor([[mean]]),
                                                  log_scales=torch.tensor([[math.log(scale)]])).item()
    assert math.isfinite(got32) and got32 == pytest.approx(ref, rel=1e-5, abs=1e-5)


def test_discretized_edge_bins_pinned():
    # x = -1 with mean -1 and scale 1: P = Phi(1/255); x = +1 with mean +1: the same by symmetry
    x = torch.tensor([[-1.0, 1.0]], dtype=F64)
    logp = L.discretized_gaussian_log_likelihood(x, means=x, log_scales=torch.zeros(1, 2, dtype=F64))
    ref = math.log(0.5 * math.erfc(-H / math.sqrt(2)))
    assert logp[0, 0].item() == pytest.approx(ref, rel=1e-14)
    assert logp[0, 1].item() == pytest.approx(ref, rel=1e-14)


def test_discretized_gradients_are_finite_and_correct_including_far_tails():
    x = images(2, (6,), seed=3)
    means = torch.tensor([[0.0, 0.5, -0.9, 40.0, -40.0, 0.3], [1.0, -1.0, 0.2, 0.0, 0.01, -0.5]], dtype=F64)
    log_scales = torch.tensor([[-3.0, -6.0, -1.0, -4.0, -4.0, 1.0], [-2.0, -2.0, -7.0, 0.0, -9.0, -5.0]], dtype=F64)
    means.requires_grad_(True)
    log_scales.requires_grad_(True)
    logp = L.discretized_gaussian_log_likelihood(x, means=means, log_scales=log_scales)
    logp.sum().backward()
    assert torch.isfinite(means.grad).all() and torch.isfinite(log_scales.grad).all()
    m = means.detach().clone().requires_grad_(True)
    s = log_scales.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda m, s: L.discretized_gaussian_log_likelihood(x, means=m, log_scales=s), (m, s), rtol=1e-5)


def test_discretized_errors():
    ok = torch.zeros(1, 2, dtype=F64) + GRID[10]
    with pytest.raises(ValueError, match=r"x must lie in \[-1.0, 1.0\]"):
        L.discretized_gaussian_log_likelihood(ok + 2.0, means=ok, log_scales=ok)
    with pytest.raises(ValueError, match="8-bit data.*0.5 bins away"):
        L.discretized_gaussian_log_likelihood(torch.zeros(1, 2, dtype=F64), means=ok, log_scales=ok)
    with pytest.raises(ValueError, match=r"means of shape \(3,\) cannot be broadcast to the data shape \(1, 2\)"):
        L.discretized_gaussian_log_likelihood(ok, means=torch.zeros(3, dtype=F64), log_scales=ok)
    with pytest.raises(ValueError, match="log_scales must be finite"):
        L.discretized_gaussian_log_likelihood(ok, means=ok, log_scales=ok + float("inf"))


# =========================================================================== VLB terms
def test_prior_kl_closed_form_and_units():
    x0 = images(3, (2, 2), seed=4)
    ab = 0.01
    nats = L.prior_kl(x0, ab, unit="nats")
    ref = (0.5 * (ab * x0**2 + (1 - ab) - 1 - math.log(1 - ab))).reshape(3, -1).sum(1)
    assert torch.allclose(nats, ref, rtol=1e-13)
    bpd = L.prior_kl(x0, ab)
    assert torch.allclose(bpd * 4 * math.log(2), nats, rtol=1e-13)


@settings(deadline=None, max_examples=15)
@given(t=st.integers(1, 99), seed=st.integers(0, 2**16))
def test_posterior_kl_is_zero_for_the_exact_posterior_and_closed_form_for_beta(t, seed):
    # eps_hat = the true eps  =>  x0_from_eps gives x_0 and mu_theta equals the true posterior mean
    sch = cosine_schedule(100)
    c = sch.at(t)
    x0 = images(3, (2, 3), seed=seed)
    eps = torch.randn(x0.shape, generator=gen(seed), dtype=F64)
    x_t = q_sample(x0, c["alpha_bar"], eps=eps)
    mean = posterior_mean(x0_from_eps(x_t, eps, c["alpha_bar"]), x_t, c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    args = (x0, x_t, c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    kl0 = L.posterior_kl(*args, model_mean=mean, model_log_variance=torch.log(c["beta_tilde"]), unit="nats")
    assert kl0.abs().max().item() < 1e-10
    # variance beta instead of beta_tilde: per dimension 0.5 (log(beta/beta_tilde) + beta_tilde/beta - 1)
    r = (c["beta_tilde"] / c["beta"]).item()
    kl1 = L.posterior_kl(*args, model_mean=mean, model_log_variance=torch.log(c["beta"]), unit="nats")
    assert torch.allclose(kl1, torch.full((3,), 6 * 0.5 * (-math.log(r) + r - 1), dtype=F64), rtol=1e-8)


def test_vlb_term_dispatches_decoder_at_first_step_and_kl_elsewhere():
    sch = linear_schedule(50)
    x0 = images(4, (3, 2), seed=5)
    t = torch.tensor([0, 7, 0, 49])
    c = sch.at(t, like=x0)
    eps = torch.randn(x0.shape, generator=gen(5), dtype=F64)
    x_t = q_sample(x0, c["alpha_bar"], eps=eps)
    mean = x0 + 0.01 * torch.randn(x0.shape, generator=gen(6), dtype=F64)
    logvar = torch.full((4,), math.log(1e-4), dtype=F64)
    out = L.vlb_term(x0, x_t, t, model_mean=mean, model_log_variance=logvar, schedule=sch, unit="nats")
    for i in range(4):
        if t[i] == 0:
            ref = L.decoder_nll(x0[i:i + 1], model_mean=mean[i:i + 1], model_log_variance=logvar[i], unit="nats")
        else:
            ref = L.posterior_kl(x0[i:i + 1], x_t[i:i + 1], c["alpha_bar"][i], c["alpha_bar_prev"][i], c["beta"][i],
                                 model_mean=mean[i:i + 1], model_log_variance=logvar[i], unit="nats")
        assert out[i].item() == pytest.approx(ref.item(), rel=1e-13)
    # the decoder term is -sum log p(bin) (independent check of decoder_nll)
    logp = L.discretized_gaussian_log_likelihood(x0[:1], means=mean[:1], log_scales=0.5 * math.log(1e-4))
    assert out[0].item() == pytest.approx(-logp.sum().item(), rel=1e-13)


def test_vlb_of_a_single_point_dataset_is_prior_plus_decoder_exactly():
    # For data = one point y, the exact denoiser returns y, so every L_{t-1} vanishes and the
    # bound is L_T + L_0 with L_0 = -log P(bin of y | N(y, beta_tilde_2)), known in closed form:
    # an interior bin has P = erf(h / (s sqrt 2)), an edge bin P = Phi(h / s).
    sch = cosine_schedule(20)
    y = torch.tensor([[-1.0, 12 / 127.5 - 1, 200 / 127.5 - 1]], dtype=F64)
    data = PointSet(y)
    x0 = y.expand(5, 3).clone()
    r = L.vlb(data.eps_model(sch), x0, schedule=sch, unit="nats", generator=gen(7))
    assert r["terms"].shape == (5, 20) and r["total"].shape == (5,)
    assert r["terms"][:, 1:].abs().max().item() < 1e-10
    s = math.sqrt(sch.beta_tilde[1].item())
    l0 = -math.log(0.5 * math.erfc(-H / (s * math.sqrt(2)))) - 2 * math.log(math.erf(H / (s * math.sqrt(2))))
    assert torch.allclose(r["terms"][:, 0], torch.full((5,), l0, dtype=F64), rtol=1e-9)
    ab_T = sch.alpha_bar[-1].item()
    prior = (0.5 * (ab_T * y**2 + (1 - ab_T) - 1 - math.log(1 - ab_T))).sum().item()
    assert torch.allclose(r["prior"], torch.full((5,), prior, dtype=F64), rtol=1e-12)
    assert torch.allclose(r["total"], r["prior"] + r["terms"].sum(1), rtol=1e-14)
    bpd = L.vlb(data.eps_model(sch), x0, schedule=sch, generator=gen(7))["total"]
    assert torch.allclose(bpd * 3 * math.log(2), r["total"], rtol=1e-10)


# --- the bound from its definition, by Gauss-Hermite quadrature (T = 2, one pixel) ----------
_SCH2 = Schedule(torch.tensor([0.05, 0.3], dtype=F64))
_X0 = 140 / 127.5 - 1


def _toy_model(x_t, t):
    """An imperfect, smooth eps-model (so the bound is strictly above the NLL)."""
    return 0.4 * torch.tanh(x_t) + 0.05 * t.to(x_t.dtype)[:, None]


def _mu_theta(x, i):
    """mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t), Ho et al. eq. 11."""
    b, ab = _SCH2.betas[i].item(), _SCH2.alpha_bar[i].item()
    xt = torch.as_tensor(x, dtype=F64).reshape(-1, 1)
    eps_hat = _toy_model(xt, torch.full((xt.shape[0],), i, dtype=torch.long))
    return ((xt - b / math.sqrt(1 - ab) * eps_hat) / math.sqrt(1 - b)).numpy().reshape(np.shape(x))


def _log_normal(x, m, v):
    return -0.5 * np.log(2 * np.pi * v) - (x - m) ** 2 / (2 * v)


def _log_bin(x0, m, v):
    s = np.sqrt(v)
    a, b = (x0 - H - m) / s, (x0 + H - m) / s
    lo, hi = np.where(a > 0, -b, a), np.where(a > 0, -a, b)
    return log_ndtr(hi) + np.log1p(-np.exp(log_ndtr(lo) - log_ndtr(hi)))


def test_vlb_matches_the_bound_computed_from_its_definition_and_exceeds_the_exact_nll():
    # The bound is E_q[log q(x_1, x_2 | x_0) - log p(x_2) p(x_1 | x_2) p(x_0 | x_1)] (Ho et al. eq. 3),
    # evaluated here by 2-D Gauss-Hermite quadrature (80 nodes; converged to 1e-12), independently of
    # the KL decomposition (eq. 5) that `vlb` implements. The reverse variances are beta_tilde, with
    # the first step's replaced by the second step's (the documented convention).
    ab, b = _SCH2.alpha_bar.numpy(), _SCH2.betas.numpy()
    var = _SCH2.beta_tilde[1].item()
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / np.sqrt(2 * np.pi)
    Z1, Z2 = np.meshgrid(z, z, indexing="ij")
    W = np.outer(w, w)
    x1 = np.sqrt(ab[0]) * _X0 + np.sqrt(1 - ab[0]) * Z1
    x2 = np.sqrt(1 - b[1]) * x1 + np.sqrt(b[1]) * Z2
    integrand = (_log_normal(x1, np.sqrt(ab[0]) * _X0, 1 - ab[0]) + _log_normal(x2, np.sqrt(1 - b[1]) * x1, b[1])
                 - _log_normal(x2, 0.0, 1.0) - _log_normal(x1, _mu_theta(x2, 1), var)
                 - _log_bin(_X0, _mu_theta(x1, 0), var))
    bound = float((W * integrand).sum())
    # exact NLL of the model: -log int p(x_2) p(x_1|x_2) P(x_0|x_1), quadrature over (x_2, x_1)
    X2 = Z1
    X1 = _mu_theta(X2, 1) + np.sqrt(var) * Z2
    nll = -math.log(float((W * np.exp(_log_bin(_X0, _mu_theta(X1, 0), var))).sum()))
    assert bound > nll + 1.0  # the gap KL(q(x_1:2|x_0) || p(x_1:2|x_0)) is large for this crude model

    n = 20_000
    r = L.vlb(_toy_model, torch.full((n, 1), _X0, dtype=F64), schedule=_SCH2, unit="nats", generator=gen(8))
    total = r["total"]
    se = total.std().item() / math.sqrt(n)
    assert abs(total.mean().item() - bound) < N_SE * se
    assert total.mean().item() - N_SE * se > nll


def test_vlb_learned_variance_uses_the_interpolated_log_variance():
    # v = -1 (beta_tilde) and v = +1 (beta) give the fixed-variance bounds; at the first step the
    # learned range is [beta_tilde_2, beta_1] while the fixed "beta" choice uses beta_tilde_2 there
    sch = linear_schedule(10)
    data = PointSet(torch.stack([GRID[64:65], GRID[191:192]]))
    eps_model = data.eps_model(sch)
    x0 = data.sample(6, generator=gen(9))
    for v, fixed in ((-1.0, "beta_tilde"), (1.0, "beta")):
        learned = lambda x, t, v=v: (eps_model(x, t), torch.full_like(x, v))  # noqa: E731
        a = L.vlb(learned, x0, schedule=sch, variance="learned", generator=gen(10))["terms"]
        b = L.vlb(eps_model, x0, schedule=sch, variance=fixed, generator=gen(10))["terms"]
        assert torch.allclose(a[:, 1:], b[:, 1:], rtol=1e-12)
        if fixed == "beta_tilde":
            assert torch.allclose(a[:, 0], b[:, 0], rtol=1e-12)
        else:
            mean = x0  # the denoiser of two far-apart points is exact at the first step
            ref = L.decoder_nll(x0, model_mean=mean, model_log_variance=math.log(sch.betas[0].item()))
            assert torch.allclose(a[:, 0], ref, rtol=1e-6)


def test_vlb_term_errors():
    sch = linear_schedule(10)
    x0 = images(2, (2,), seed=1)
    kw = dict(model_mean=x0, model_log_variance=-5.0, schedule=sch)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 9\] for a schedule with T=10, got \[3, 10\]"):
        L.vlb_term(x0, x0, torch.tensor([3, 10]), **kw)
    with pytest.raises(ValueError, match="t must hold integer timestep indices"):
        L.vlb_term(x0, x0, torch.tensor([3.0, 1.0]), **kw)
    with pytest.raises(ValueError, match="x_0 must hold 8-bit data"):
        L.vlb_term(x0 + 0.001, x0, 3, **kw)
    with pytest.raises(ValueError, match="unit must be one of 'bpd', 'nats'; got 'bits'"):
        L.vlb_term(x0, x0, 3, unit="bits", **kw)
    with pytest.raises(ValueError, match=r"alpha_bar_prev must lie in \[0.0, 1.0\)"):
        L.posterior_kl(x0, x0, 0.9, 1.0, 0.1, model_mean=x0, model_log_variance=-3.0)
    with pytest.raises(ValueError, match="variance must be one of"):
        L.vlb(lambda x, t: x, x0, schedule=sch, variance="fixedlarge")


# =========================================================================== learned variance
def test_learned_log_variance_endpoints_midpoint_and_monotone():
    beta, beta_tilde = torch.tensor([0.02, 0.5], dtype=F64), torch.tensor([0.01, 0.1], dtype=F64)
    v = torch.linspace(-1, 1, 101, dtype=F64).reshape(1, 101).expand(2, 101)
    lv = L.learned_log_variance(v, beta, beta_tilde)
    assert torch.allclose(lv[:, -1], beta.log(), rtol=1e-15)
    assert torch.allclose(lv[:, 0], beta_tilde.log(), rtol=1e-15)
    assert torch.allclose(lv[:, 50], 0.5 * (beta.log() + beta_tilde.log()), rtol=1e-14)  # geometric mean
    assert bool((lv[:, 1:] > lv[:, :-1]).all())
    # linear in v in log space
    assert torch.allclose(lv[:, 1:] - lv[:, :-1], (lv[:, 1:2] - lv[:, :1]).expand(2, 100), rtol=1e-9)


def test_learned_log_variance_accepts_any_real_v_and_extrapolates_in_log_space():
    # Nichol & Dhariwal 2021 put no constraint on v: outside [-1, 1] the log-variance extrapolates
    # linearly, so the variance leaves [beta_tilde, beta] but stays a positive, finite number.
    beta, beta_tilde = 0.02, 0.01
    v = torch.tensor([-7.0, -3.0, -1.0, 1.0, 3.0, 7.0], dtype=F64)
    lv = L.learned_log_variance(v, beta, beta_tilde)
    w = (v + 1) / 2
    want = w * math.log(beta) + (1 - w) * math.log(beta_tilde)
    assert torch.allclose(lv, want, rtol=1e-14)
    var = lv.exp()
    assert bool((var > 0).all()) and bool(torch.isfinite(var).all())
    assert bool((var[:2] < beta_tilde).all()) and bool((var[-2:] > beta).all())
    # v = 3 is one full interval above beta in log space: Sigma = beta^2 / beta_tilde
    assert var[4].item() == pytest.approx(beta**2 / beta_tilde, rel=1e-13)
    # gradients flow for any v (no clamp inside)
    vg = torch.tensor([5.0, -5.0], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(L.learned_log_variance(vg, beta, beta_tilde).sum(), vg)
    assert torch.allclose(g, torch.full((2,), 0.5 * math.log(beta / beta_tilde), dtype=F64), rtol=1e-14)


def test_learned_log_variance_errors():
    v = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="v must be finite"):
        L.learned_log_variance(v + float("nan"), 0.02, 0.01)
    with pytest.raises(ValueError, match="v must be finite"):
        L.learned_log_variance(v + float("inf"), 0.02, 0.01)
    with pytest.raises(ValueError, match="v must be a floating-point torch.Tensor"):
        L.learned_log_variance(torch.zeros(2, dtype=torch.long), 0.02, 0.01)
    with pytest.raises(ValueError, match=r"beta_tilde_t must lie in \(0.0, 1.0\]"):
        L.learned_log_variance(v, 0.02, 0.0)
