"""Tests for diffnotes.sde: closed-form marginals, reverse dynamics and samplers.

Monte-Carlo checks use fixed seeds and tolerances of the form ``Z * SE + allowance`` where SE is
the standard error of the statistic, Z = 4.5 (a false alarm rate of ~1e-5 per statistic), and the
allowance bounds the discretisation bias measured/derived for the step count used.
"""
import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes.oracles import Gaussian, GaussianMixture
from diffnotes.schedules import linear_schedule, respace
from diffnotes.sde import (
    SubVPSDE,
    VESDE,
    VPSDE,
    eps_model_as_score,
    probability_flow_drift,
    reverse_drift,
    sample_euler_maruyama,
    sample_ode_adaptive,
    sample_ode_euler,
    sample_ode_heun,
    sample_pc,
    time_grid,
)

Z = 4.5
F64 = torch.float64
SDES = [VPSDE(), SubVPSDE(), VESDE()]
IDS = ["VP", "subVP", "VE"]


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def mix():
    # two well separated, anisotropic components: weights are recoverable by classification
    return GaussianMixture(
        [0.3, 0.7],
        [[-1.5, 0.5], [1.5, -0.5]],
        [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.25]]],
    )


@pytest.fixture(scope="module")
def gauss():
    return Gaussian([1.0, -0.5], [[0.5, 0.3], [0.3, 0.4]])


# ---------------------------------------------------------------------------------------------
# Closed-form marginals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginal_coefs_match_monte_carlo_forward_sde(sde):
    # Data: dim 0 is a point mass at 1.5 (so Var[x_t] = std(t)^2 exactly, which separates e.g.
    # the VE std sqrt(sigma^2 - sigma_min^2) from sigma), dim 1 is N(-1, 0.5^2).
    n, K = 10000, 2000
    g = gen(0)
    x0 = torch.stack([torch.full((n,), 1.5, dtype=F64), -1.0 + 0.5 * torch.randn(n, generator=g, dtype=F64)], 1)
    mu0, var0 = torch.tensor([1.5, -1.0], dtype=F64), torch.tensor([0.0, 0.25], dtype=F64)
    checkpoints = {int(K * c): c for c in (0.05, 0.25, 0.5, 1.0)}
    dt = sde.T / K
    t_grid = torch.arange(K, dtype=F64) * dt
    # drift(x, t) = drift_coef(t) x (checked below); evaluate the coefficients once on the grid
    f_k, g_k = sde.drift_coef(t_grid).tolist(), (sde.diffusion(t_grid) * math.sqrt(dt)).tolist()
    x = x0.clone()
    for k in range(K):
        x = x + (f_k[k] * dt) * x + g_k[k] * torch.randn(x.shape, generator=g, dtype=F64)
        if k + 1 in checkpoints:
            t_now = (k + 1) * dt
            m, s = sde.marginal_coefs(t_now)
            mean, var = m * mu0, m**2 * var0 + s**2
            # SE of a sample mean sqrt(var/n); of a Gaussian sample variance var*sqrt(2/(n-1)).
            # Euler-Maruyama with dt = 5e-4 has relative weak error <= dt/8 int beta^2 ~ 0.8% (VP),
            # 8.5 dt ~ 0.4% (VE): allow 1% of the value.
            tol_mean = Z * torch.sqrt(var / n) + 0.01 * mean.abs()
            tol_var = Z * var * math.sqrt(2 / (n - 1)) + 0.01 * var
            assert ((x.mean(0) - mean).abs() <= tol_mean).all(), (t_now, x.mean(0), mean)
            assert ((x.var(0) - var).abs() <= tol_var).all(), (t_now, x.var(0), var)


def _fd(fn, t, h=1e-6):
    return (fn(t + h) - fn(t - h)) / (2 * h)


def _check_moment_odes(sde, t):
    # d/dt m = f m ;  d/dt s^2 = 2 f s^2 + g^2   (linear SDE dx = f(t) x dt + g(t) dw)
    t = torch.as_tensor(t, dtype=F64)
    m, s = sde.marginal_coefs(t)
    f, g = sde.drift_coef(t), sde.diffusion(t)
    dm = _fd(lambda u: sde.marginal_coefs(u)[0], t)
    dv = _fd(lambda u: sde.marginal_coefs(u)[1] ** 2, t)
    torch.testing.assert_close(dm, f * m, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(dv, 2 * f * s**2 + g**2, rtol=1e-6, atol=1e-9)
    # and the drift is f(t) x
    x = torch.tensor([[1.0, -2.0]], dtype=F64)
    torch.testing.assert_close(sde.drift(x, t), f * x)


@settings(deadline=None, max_examples=10)
@given(st.floats(0.01, 1.0), st.floats(1.0, 30.0), st.floats(0.02, 0.98))
def test_vp_and_subvp_moments_solve_moment_odes(beta_min, beta_max, t):
    for cls in (VPSDE, SubVPSDE):
        _check_moment_odes(cls(beta_min, beta_max), t)


@settings(deadline=None, max_examples=10)
@given(st.floats(1e-3, 0.1), st.floats(1.0, 100.0), st.floats(0.02, 0.98))
def test_ve_moments_solve_moment_odes(sigma_min, sigma_max, t):
    _check_moment_odes(VESDE(sigma_min, sigma_max), t)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginal_at_zero_is_the_data_and_prior_std_fits(sde):
    m, s = sde.marginal_coefs(0.0)
    assert m.item() == 1.0 and s.item() == 0.0
    m, s = sde.marginal_coefs(sde.T)
    # at T the marginal of bounded data is close to the prior N(0, prior_std^2)
    assert m.item() < 0.01 or isinstance(sde, VESDE)
    assert abs(s.item() - sde.prior_std) / sde.prior_std < 1e-3


def test_subvp_variance_never_exceeds_vp():
    t = torch.linspace(0, 1, 201, dtype=F64)
    m_vp, s_vp = VPSDE().marginal_coefs(t)
    m_sub, s_sub = SubVPSDE().marginal_coefs(t)
    torch.testing.assert_close(m_vp, m_sub, rtol=0, atol=0)
    assert (s_sub**2 <= s_vp**2).all()
    assert (s_sub[1:] ** 2 < s_vp[1:] ** 2).all()


def test_subvp_diffusion_is_real_near_zero_and_the_wrong_form_is_not():
    sde = SubVPSDE()
    t = torch.tensor([0.0, 1e-4, 1e-3, 1e-2, 0.5], dtype=F64)
    beta, B = sde.beta(t), sde.integrated_beta(t)
    g = sde.diffusion(t)
    assert torch.isfinite(g).all() and (g >= 0).all() and g[0] == 0
    # near 0: g^2 = beta (1 - e^{-2B}) = 2 beta B (1 + O(B)), B ~ beta_min t
    torch.testing.assert_close(g[1:3] ** 2, 2 * beta[1:3] * B[1:3], rtol=1e-3, atol=0)
    wrong_g2 = beta * (1 - 2 * torch.exp(-B))  # the mis-transcribed 1 - 2 exp(-int beta)
    assert (wrong_g2[:4] < 0).all()  # its square root would be NaN near t = 0
    assert torch.isnan(torch.sqrt(wrong_g2[:4])).all()
    # and the wrong form does not produce the sub-VP variance (moment ODE), the right one does
    m, s = sde.marginal_coefs(t[4])
    dv = _fd(lambda u: sde.marginal_coefs(u)[1] ** 2, t[4])
    f = sde.drift_coef(t[4])
    torch.testing.assert_close(dv, 2 * f * s**2 + g[4] ** 2, rtol=1e-6, atol=0)
    assert abs((dv - 2 * f * s**2 - wrong_g2[4]).item()) > 0.1


def test_pinned_numbers():
    m, s = VPSDE().marginal_coefs(1.0)
    assert m.item() == pytest.approx(0.006571586494929619, rel=1e-12)
    assert s.item() == pytest.approx(0.9999784068923386, rel=1e-12)
    assert SubVPSDE().marginal_coefs(0.5)[1].item() == pytest.approx(0.9209361875468394, rel=1e-12)
    assert VESDE().diffusion(0.0).item() == pytest.approx(0.0412727348049926, rel=1e-12)
    assert VESDE().marginal_coefs(1.0)[1].item() == pytest.approx(49.99999899999999, rel=1e-12)
    assert VESDE().marginal_coefs(0.5)[1].item() == pytest.approx(0.7070360669725416, rel=1e-12)
    assert VESDE().sigma(1.0).item() == pytest.approx(50.0, rel=1e-12)


def test_vp_sde_is_the_limit_of_the_ddpm_linear_schedule():
    # beta_i = beta(i / (N-1)) / N exactly for beta_min = 0.1, beta_max = 20, N = 1000
    sch = linear_schedule()
    i = torch.arange(1000, dtype=F64)
    torch.testing.assert_close(sch.betas, VPSDE().beta(i / 999) / 1000, rtol=1e-12, atol=0)


@settings(deadline=None, max_examples=10)
@given(st.sampled_from([0, 1, 2]), st.floats(0.0, 0.4), st.floats(0.41, 0.7), st.floats(0.71, 1.0))
def test_transition_kernels_compose(k, s, u, t):
    sde = SDES[k]
    r_su, g_su = sde.transition_coefs(s, u)
    r_ut, g_ut = sde.transition_coefs(u, t)
    r_st, g_st = sde.transition_coefs(s, t)
    torch.testing.assert_close(r_su * r_ut, r_st)
    torch.testing.assert_close(r_ut**2 * g_su**2 + g_ut**2, g_st**2)
    # from 0 it is the marginal
    m, std = sde.marginal_coefs(t)
    r0, g0 = sde.transition_coefs(0.0, t)
    torch.testing.assert_close((r0, g0), (m, std))


def test_vp_transition_is_the_ddpm_step():
    # (sqrt(1 - beta_i), sqrt(beta_i)) with 1 - beta_i = alpha_bar(t) / alpha_bar(s)
    sde = VPSDE()
    r, g = sde.transition_coefs(0.3, 0.31)
    ab_ratio = (sde.marginal_coefs(0.31)[0] / sde.marginal_coefs(0.3)[0]) ** 2
    torch.testing.assert_close(r, ab_ratio.sqrt())
    torch.testing.assert_close(g**2, 1 - ab_ratio)


def test_prior_sample_std_dtype_and_generator():
    for sde in SDES:
        x = sde.prior_sample((20000, 2), generator=gen(3), dtype=F64)
        assert x.dtype == F64 and x.shape == (20000, 2)
        # SE of the sample std ~ std / sqrt(2n)
        assert abs(x.std().item() / sde.prior_std - 1) < Z / math.sqrt(2 * 40000)
        assert torch.equal(x, sde.prior_sample((20000, 2), generator=gen(3), dtype=F64))
    assert VPSDE().prior_sample((3, 2)).dtype == torch.float32


def test_sdes_are_frozen_and_validate():
    with pytest.raises(dataclasses.FrozenInstanceError):
        VPSDE().beta_min = 1.0
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(beta_min=0.0)
    with pytest.raises(ValueError, match="sigma_max"):
        VESDE(sigma_min=0.1, sigma_max=0.05)
    with pytest.raises(ValueError, match=r"t must lie in \[0\.0, 1\.0\]"):
        VPSDE().marginal_coefs(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="t must lie in"):
        VESDE().diffusion(-0.1)


# ---------------------------------------------------------------------------------------------
# Reverse drift and probability flow
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_drift_formulas(sde):
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=F64)
    score = torch.tensor([[1.0, 0.5], [-0.25, 2.0]], dtype=F64)
    t = torch.tensor([0.2, 0.7], dtype=F64)
    f = sde.drift_coef(t)[:, None] * x
    g2 = sde.diffusion(t)[:, None] ** 2
    torch.testing.assert_close(reverse_drift(sde, x, t, score), f - g2 * score)
    torch.testing.assert_close(probability_flow_drift(sde, x, t, score), f - 0.5 * g2 * score)


def _gaussian_marginal(oracle, sde, t):
    m, s = sde.marginal_coefs(t)
    return m * oracle.mean, m**2 * oracle.cov + s**2 * torch.eye(oracle.dim, dtype=F64)


def _sqrtm(V):
    lam, U = torch.linalg.eigh(V)
    return (U * lam.sqrt()) @ U.T


@pytest.mark.parametrize("sde, tol", [(VPSDE(), 1e-3), (VESDE(), 1e-2)], ids=["VP", "VE"])
def test_probability_flow_transports_the_marginal_at_every_t(gauss, sde, tol):
    # For Gaussian data every p_t = N(mu_t, V_t) and all V_t share Sigma's eigenvectors, so the
    # flow map is x_t = mu_t + V_t^{1/2} V_T^{-1/2} (x_T - mu_T): points at fixed standardised
    # coordinates q stay at q. Checked at every step via the callback (Heun, 200 steps).
    q = torch.tensor([[-3.0, 0.0], [1.0, 1.0], [0.5, -2.0], [2.5, 2.5], [0.0, 0.0]], dtype=F64)
    mu_T, V_T = _gaussian_marginal(gauss, sde, 1.0)
    x_T = mu_T + q @ _sqrtm(V_T)
    seen = []

    def cb(info):
        mu, V = _gaussian_marginal(gauss, sde, info.t)
        expected = mu + q @ _sqrtm(V)
        scale = V.diagonal().sqrt().max()
        seen.append(((info.x - expected).abs().max() / scale).item())

    ts = time_grid(200, 1.0, 1e-3)
    x = sample_ode_heun(gauss.score_model(sde), x_T, ts, sde=sde, callback=cb)
    mu, V = _gaussian_marginal(gauss, sde, 1e-3)
    seen.append(((x - (mu + q @ _sqrtm(V))).abs().max() / V.diagonal().sqrt().max()).item())
    assert len(seen) == 201
    # relative error of Heun, O(h^2); measured 1.6e-4 (VP) and 3.4e-3 (VE, whose sigma(t) grows
    # like 5000^t), each 4x smaller at 400 steps
    assert max(seen) < tol, max(seen)
    # a wrong factor in the flow (the reverse-SDE drift, no 1/2) goes far off
    bad = x_T
    for i in range(len(ts) - 1):
        t, h = float(ts[i]), float(ts[i + 1] - ts[i])
        bad = bad + h * reverse_drift(sde, bad, t, gauss.score_model(sde)(bad, t))
    assert ((bad - (mu + q @ _sqrtm(V))).abs().max() / V.diagonal().sqrt().max()).item() > 0.1


def test_reverse_sde_has_the_right_marginal_at_every_t():
    # sub-VP reverse SDE (Euler-Maruyama, 200 steps) started from the exact p_T of 1-D Gaussian
    # data; sample mean and std are compared with the exact p_t along the way.
    oracle = Gaussian([0.8], [[0.3]])
    sde = SubVPSDE()
    n = 4000
    mu_T, V_T = _gaussian_marginal(oracle, sde, 1.0)
    x = mu_T + V_T.sqrt() * torch.randn(n, 1, generator=gen(5), dtype=F64)
    checked = []

    def cb(info):
        if info.i % 25 == 0:
            mu, V = _gaussian_marginal(oracle, sde, info.t)
            sd = V.sqrt().item()
            # SE: sd/sqrt(n) for the mean, sd/sqrt(2n) for the std; + 1% of sd for the EM bias
            assert abs(info.x.mean().item() - mu.item()) < Z * sd / math.sqrt(n) + 0.01 * sd
            assert abs(info.x.std().item() - sd) < Z * sd / math.sqrt(2 * n) + 0.01 * sd
            checked.append(info.t)

    sample_euler_maruyama(oracle.score_model(sde), x, time_grid(200), sde=sde, generator=gen(6), callback=cb)
    assert len(checked) == 8


# ---------------------------------------------------------------------------------------------
# Samplers recover an exact oracle
# ---------------------------------------------------------------------------------------------
def _assert_recovers(y, mix, sde, t_end, allowance=0.01):
    """Mean, covariance and mixture weights of samples y against the exact p_{t_end}.

    Tolerances: Z * empirical SE (mean: sd/sqrt(n); covariance entry: std of the centred products
    /sqrt(n); weight: sqrt(w(1-w)/n)) + ``allowance`` for the discretisation bias, measured with
    n = 20000 at the step counts used below to be <= 0.01 on every statistic.
    """
    n = y.shape[0]
    m, s = sde.marginal_coefs(t_end)
    mean = m * mix.mean
    cov = m**2 * mix.covariance + s**2 * torch.eye(2, dtype=F64)
    assert torch.isfinite(y).all()
    se_mean = y.std(0) / math.sqrt(n)
    assert ((y.mean(0) - mean).abs() <= Z * se_mean + allowance).all(), (y.mean(0), mean)
    d = y - y.mean(0)
    prods = d[:, :, None] * d[:, None, :]
    se_cov = prods.std(0) / math.sqrt(n)
    assert ((torch.cov(y.T) - cov).abs() <= Z * se_cov + allowance).all(), (torch.cov(y.T), cov)
    labels = mix.responsibilities(y, m, s).argmax(1)
    w_hat = torch.stack([(labels == k).double().mean() for k in range(2)])
    se_w = torch.sqrt(mix.weights * (1 - mix.weights) / n)
    assert ((w_hat - mix.weights).abs() <= Z * se_w + allowance).all(), w_hat


N_SAMPLES = 3000
T_END = 1e-3


def _prior(sde, seed):
    return sde.prior_sample((N_SAMPLES, 2), generator=gen(seed), dtype=F64)


def test_euler_maruyama_recovers_mixture(mix):
    sde = VPSDE()
    y = sample_euler_maruyama(mix.score_model(sde), _prior(sde, 10), time_grid(200), sde=sde, generator=gen(11))
    _assert_recovers(y, mix, sde, T_END)


def test_pc_reverse_diffusion_recovers_mixture(mix):
    sde = VPSDE()
    y = sample_pc(mix.score_model(sde), _prior(sde, 12), time_grid(100), sde=sde, norm="batch", generator=gen(13))
    _assert_recovers(y, mix, sde, T_END)


def test_pc_euler_maruyama_predictor_recovers_mixture(mix):
    sde = SubVPSDE()
    y = sample_pc(
        mix.score_model(sde), _prior(sde, 14), time_grid(100), sde=sde, snr=0.1,
        predictor="euler_maruyama", norm="batch", generator=gen(15),
    )
    _assert_recovers(y, mix, sde, T_END)


def test_pc_norms_batch_vs_per_sample():
    # Langevin with a state-dependent step h(x) has stationary density p / h: per-sample norms,
    # h ~ 1/|s(x)|^2, tilt the target to p |s|^2 and inflate the variance (for isotropic Gaussian
    # data in D dims by (D+2)/D with full mixing); batch-averaged norms give one h for all.
    # Unadjusted Langevin with eps = 2 snr^2 sigma^2 has variance sigma^2 / (1 - snr^2) (+2.6%).
    D, n, snr = 8, 2000, 0.16
    oracle = Gaussian(torch.full((D,), 0.5), 0.25 * torch.eye(D, dtype=F64))
    sde = VPSDE()
    x = sde.prior_sample((n, D), generator=gen(16), dtype=F64)
    ratio = {}
    for norm in ("batch", "sample"):
        y = sample_pc(oracle.score_model(sde), x, time_grid(100), sde=sde, snr=snr, norm=norm, generator=gen(17))
        ratio[norm] = y.var(0).mean().item() / 0.25
    # SE of the pooled variance ratio sqrt(2/(nD)); + 0.01 for the 100-step discretisation
    assert abs(ratio["batch"] - 1 / (1 - snr**2)) < Z * math.sqrt(2 / (n * D)) + 0.01, ratio
    assert ratio["sample"] > 1.2, ratio  # measured 1.41


def test_pc_per_sample_norms_make_samples_independent_of_the_batch(gauss, monkeypatch):
    # with noise that is a function of each row alone (as with one generator per image, which
    # the CLI routes through `randn_like`), a sample's result must not depend on its batch mates
    # under norm="sample", and does under norm="batch"
    import diffnotes.sde as sde_module

    monkeypatch.setattr(sde_module, "randn_like", lambda x, generator=None: torch.sin(37.0 * x + 0.3))
    sde = VPSDE()
    sm = gauss.score_model(sde)
    x = torch.tensor([[0.3, -0.2], [1.5, 0.7], [-2.0, 0.1]], dtype=F64)
    ts = time_grid(10)
    for norm, same in (("sample", True), ("batch", False)):
        full = sample_pc(sm, x, ts, sde=sde, norm=norm)
        alone = sample_pc(sm, x[:1], ts, sde=sde, norm=norm)
        assert torch.allclose(full[:1], alone, rtol=1e-12, atol=1e-12) == same, norm


def test_ode_euler_recovers_mixture(mix):
    sde = VPSDE()
    y = sample_ode_euler(mix.score_model(sde), _prior(sde, 18), time_grid(200), sde=sde)
    _assert_recovers(y, mix, sde, T_END)


def test_ode_heun_recovers_mixture(mix):
    sde = SubVPSDE()
    y = sample_ode_heun(mix.score_model(sde), _prior(sde, 19), time_grid(40), sde=sde)
    _assert_recovers(y, mix, sde, T_END)


def test_ode_adaptive_recovers_mixture_on_ve(mix):
    sde = VESDE()
    y, info = sample_ode_adaptive(mix.score_model(sde), _prior(sde, 20), (1.0, T_END), sde=sde, return_info=True)
    _assert_recovers(y, mix, sde, T_END, allowance=0.02)
    assert info["success"] and 20 < info["nfe"] < 2000


def test_eps_model_as_score_matches_the_continuous_score_and_samples(gauss):
    sde, sch = VPSDE(), linear_schedule()
    wrapped = eps_model_as_score(gauss.eps_model(sch), sde, sch)
    exact = gauss.score_model(sde)
    x = torch.randn(64, 2, generator=gen(21), dtype=F64)
    for t in (1e-3, 0.01, 0.1, 0.5, 0.9, 1.0):
        s_w, s_e = wrapped(x, t), exact(x, t)
        # the nearest discrete alpha_bar differs by at most half a step (|d log alpha_bar| <= 0.01)
        assert ((s_w - s_e).norm(dim=1) / s_e.norm(dim=1)).max() < 0.02, t
    # and a sampler driven by the wrapped discrete model recovers the data
    n = 2000
    y = sample_ode_heun(wrapped, sde.prior_sample((n, 2), generator=gen(22), dtype=F64), time_grid(40), sde=sde)
    mean, cov = _gaussian_marginal(gauss, sde, 1e-3)
    assert ((y.mean(0) - mean).abs() < Z * cov.diagonal().sqrt() / math.sqrt(n) + 0.01).all()
    # SE of a covariance entry for Gaussian data: sqrt((S_ii S_jj + S_ij^2)/n)
    se = torch.sqrt((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n)
    assert ((torch.cov(y.T) - cov).abs() < Z * se + 0.01).all()


def test_eps_model_as_score_index_mapping():
    sde, sch = VPSDE(), linear_schedule()
    calls = []

    def model(x, t):
        calls.append(t.clone())
        assert t.dtype == torch.long
        return torch.ones_like(x)

    score = eps_model_as_score(model, sde, sch)
    # the index is the nearest discrete alpha_bar (in log) to the VP alpha_bar(t) = m(t)^2
    t = torch.linspace(1e-4, 1.0, 301, dtype=F64)
    x = torch.zeros(301, 2, dtype=F64)
    score(x, t)
    log_ab = torch.log(sch.alpha_bar)
    brute = (log_ab[None, :] + sde.integrated_beta(t)[:, None]).abs().argmin(1)
    assert torch.equal(calls[-1], brute)
    assert brute[0] == 0 and brute[-1] == 996  # DDPM's alpha_bar_999 is below VP's alpha_bar(1)
    # t whose alpha_bar(t) equals the discrete alpha_bar[500] exactly maps to 500, and the score
    # is -eps / sqrt(1 - alpha_bar_500)
    x = torch.zeros(3, 2, dtype=F64)
    B500 = -math.log(sch.alpha_bar[500].item())
    t500 = (-0.1 + math.sqrt(0.01 + 2 * 19.9 * B500)) / 19.9
    out = score(x, torch.tensor([1e-4, t500, 1.0], dtype=F64))
    assert calls[-1].tolist() == [0, 500, 996]
    torch.testing.assert_close(out[1], -1 / (1 - sch.alpha_bar[500]).sqrt() * torch.ones(2, dtype=F64))
    # a respaced schedule's model is told the parent indices
    sub = respace(sch, [999, 499, 0])
    eps_model_as_score(model, sde, sub)(x, torch.tensor([1.0, t500, 1e-3], dtype=F64))
    assert calls[-1].tolist() == [999, 499, 0]


# ---------------------------------------------------------------------------------------------
# ODE solver properties
# ---------------------------------------------------------------------------------------------
def test_probability_flow_is_deterministic(mix):
    sde = VPSDE()
    x = sde.prior_sample((16, 2), generator=gen(30), dtype=F64)
    sm = mix.score_model(sde)
    ts = time_grid(20)
    for fn in (sample_ode_euler, sample_ode_heun):
        assert torch.equal(fn(sm, x, ts, sde=sde), fn(sm, x, ts, sde=sde))
    assert torch.equal(sample_ode_adaptive(sm, x, sde=sde, rtol=1e-3), sample_ode_adaptive(sm, x, sde=sde, rtol=1e-3))


def test_stochastic_samplers_follow_the_generator(gauss):
    sde = VPSDE()
    sm = gauss.score_model(sde)
    x = sde.prior_sample((16, 2), generator=gen(31), dtype=F64)
    ts = time_grid(10)
    for fn in (sample_euler_maruyama, sample_pc):
        a, b, c = (fn(sm, x, ts, sde=sde, generator=gen(s)) for s in (1, 1, 2))
        assert torch.equal(a, b) and not torch.allclose(a, c)
    # PC with the EM predictor and no corrector is exactly Euler-Maruyama
    em = sample_euler_maruyama(sm, x, ts, sde=sde, generator=gen(4))
    pc = sample_pc(sm, x, ts, sde=sde, n_corrector=0, predictor="euler_maruyama", generator=gen(4))
    assert torch.equal(em, pc)


def test_heun_is_second_order_and_euler_first_order(mix):
    # against an adaptive DOP853 reference with rtol = atol = 1e-10
    sde = VPSDE()
    sm = mix.score_model(sde)
    x = sde.prior_sample((32, 2), generator=gen(1), dtype=F64)
    ref = sample_ode_adaptive(sm, x, (1.0, 1e-3), sde=sde, rtol=1e-10, atol=1e-10, method="DOP853")
    err = {}
    for name, fn in (("euler", sample_ode_euler), ("heun", sample_ode_heun)):
        err[name] = [(fn(sm, x, time_grid(N), sde=sde) - ref).abs().max().item() for N in (20, 40, 80)]
    for e_euler, e_heun in zip(err["euler"], err["heun"]):
        assert e_heun < e_euler
    order = {k: math.log2(v[0] / v[2]) / 2 for k, v in err.items()}  # mean observed order
    assert 0.8 < order["euler"] < 1.4, order  # measured 1.2
    assert 1.6 < order["heun"] < 2.4, order  # measured 1.85


def test_adaptive_reports_nfe_and_it_falls_as_rtol_grows(mix):
    sde = VPSDE()
    sm = mix.score_model(sde)
    x = sde.prior_sample((16, 2), generator=gen(40), dtype=F64)
    nfes = []
    for rtol in (1e-7, 1e-5, 1e-3):
        y, info = sample_ode_adaptive(sm, x, sde=sde, rtol=rtol, atol=rtol, return_info=True)
        assert {"nfe", "message", "success", "t"} <= set(info) and info["nfe"] > 0
        assert y.shape == x.shape and y.dtype == x.dtype
        nfes.append(info["nfe"])
    assert nfes[0] > nfes[1] > nfes[2], nfes


# ---------------------------------------------------------------------------------------------
# Interface: callback, time passed to the model, dtype, time grid
# ---------------------------------------------------------------------------------------------
def test_callback_and_model_time(gauss):
    sde = VESDE()
    ts = time_grid(5)
    seen_t = []

    def model(x, t):
        assert t.dtype == x.dtype and t.shape == (x.shape[0],) and t.device == x.device
        seen_t.append(t[0].item())
        return gauss.score_model(sde)(x, t)

    infos = []
    x = sde.prior_sample((4, 2), generator=gen(50), dtype=F64)
    sample_ode_euler(model, x, ts, sde=sde, callback=infos.append)
    assert [d.i for d in infos] == list(range(5))
    assert [d.t for d in infos] == pytest.approx(ts[:-1].tolist())
    assert [d.t_next for d in infos] == pytest.approx(ts[1:].tolist())
    for a, b in zip(infos, infos[1:]):
        assert torch.equal(a.x_next, b.x)
    assert seen_t == pytest.approx(ts[:-1].tolist())
    for d in infos:
        assert d.x_next.shape == d.x.shape and d.v is None and d.alpha_bar_t is None
        m, s = sde.marginal_coefs(d.t)
        torch.testing.assert_close(d.x0_hat, gauss.denoise(d.x, m, s))
        assert d.score is not None and d.eps_hat is None
    # adaptive: callback at the requested intermediate times
    infos = []
    sample_ode_adaptive(model, x, ts, sde=sde, callback=infos.append)
    assert [d.t for d in infos] == pytest.approx(ts[:-1].tolist())
    assert [d.t_next for d in infos] == pytest.approx(ts[1:].tolist())
    for a, b in zip(infos, infos[1:]):
        assert torch.equal(a.x_next, b.x)


def test_float32_in_float32_out(gauss):
    sde = VPSDE()
    x = sde.prior_sample((8, 2), generator=gen(51))
    sm = gauss.score_model(sde)
    ts = time_grid(5)
    for y in (
        sample_euler_maruyama(sm, x, ts, sde=sde, generator=gen(1)),
        sample_pc(sm, x, ts, sde=sde, generator=gen(1)),
        sample_ode_euler(sm, x, ts, sde=sde),
        sample_ode_heun(sm, x, ts, sde=sde),
        sample_ode_adaptive(sm, x, ts, sde=sde, rtol=1e-3),
    ):
        assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_time_grid():
    ts = time_grid(4, 1.0, 0.2)
    assert ts.dtype == F64
    torch.testing.assert_close(ts, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2], dtype=F64))
    with pytest.raises(ValueError, match="n must be an integer"):
        time_grid(0)
    with pytest.raises(ValueError, match="t_end"):
        time_grid(10, 1.0, 0.0)
    with pytest.raises(ValueError, match="t_start"):
        time_grid(10, 0.1, 0.2)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
ALL_SAMPLERS = [sample_euler_maruyama, sample_pc, sample_ode_euler, sample_ode_heun, sample_ode_adaptive]


@pytest.mark.parametrize("fn", ALL_SAMPLERS, ids=lambda f: f.__name__)
def test_bad_timesteps(fn, gauss):
    sde = VPSDE()
    sm = gauss.score_model(sde)
    x = torch.zeros(2, 2, dtype=F64)
    with pytest.raises(ValueError, match="strictly decreasing"):
        fn(sm, x, [1e-3, 0.5, 1.0], sde=sde)
    with pytest.raises(ValueError, match="strictly decreasing"):
        fn(sm, x, [1.0, 0.5, 0.5, 0.1], sde=sde)
    with pytest.raises(ValueError, match=r"timesteps must lie in \(0, 1\.0\]"):
        fn(sm, x, [1.0, 0.5, 0.0], sde=sde)
    with pytest.raises(ValueError, match=r"timesteps must lie in \(0, 1\.0\]"):
        fn(sm, x, [1.5, 0.5], sde=sde)
    with pytest.raises(ValueError, match="at least 2 times"):
        fn(sm, x, [1.0], sde=sde)


@pytest.mark.parametrize("fn", ALL_SAMPLERS, ids=lambda f: f.__name__)
def test_non_finite_model_output_names_the_step(fn):
    sde = VPSDE()

    def model(x, t):
        return torch.full_like(x, float("nan")) if t[0] < 0.55 else -x

    x = torch.ones(2, 2, dtype=F64)
    # the first evaluation at t = 0.4 is step 3 (Euler, EM), or step 2's Heun correction / corrector
    match = "evaluation" if fn is sample_ode_adaptive else r"step [23] \(t=0\.4"
    with pytest.raises(ValueError, match=match + ".*NaN or inf"):
        fn(model, x, [1.0, 0.8, 0.6, 0.4, 0.2], sde=sde)


def test_other_bad_arguments(gauss):
    sde = VPSDE()
    sm = gauss.score_model(sde)
    x = torch.zeros(2, 2, dtype=F64)
    ts = time_grid(3)
    for snr in (0.0, -0.1):
        with pytest.raises(ValueError, match=r"snr must lie in \(0\.0, inf"):
            sample_pc(sm, x, ts, sde=sde, snr=snr)
    with pytest.raises(ValueError, match="n_corrector"):
        sample_pc(sm, x, ts, sde=sde, n_corrector=-1)
    with pytest.raises(ValueError, match="predictor must be"):
        sample_pc(sm, x, ts, sde=sde, predictor="ancestral")
    with pytest.raises(ValueError, match="norm must be"):
        sample_pc(sm, x, ts, sde=sde, norm="max")
    with pytest.raises(ValueError, match="rtol"):
        sample_ode_adaptive(sm, x, ts, sde=sde, rtol=0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        sample_ode_adaptive(sm, x, ts, sde=sde, method="Euler")
    with pytest.raises(ValueError, match=r"model output at step 0 .*shape \(2, 2\)"):
        sample_ode_euler(lambda x, t: x[:, :1], x, ts, sde=sde)
    with pytest.raises(ValueError, match="x must have shape"):
        sample_ode_euler(sm, torch.zeros(2, dtype=F64), ts, sde=sde)
    with pytest.raises(ValueError, match="sde must be a VPSDE"):
        eps_model_as_score(gauss.eps_model(linear_schedule()), VESDE(), linear_schedule())
    with pytest.raises(ValueError, match="sde must be a VPSDE"):
        eps_model_as_score(gauss.eps_model(linear_schedule()), SubVPSDE(), linear_schedule())
    with pytest.raises(ValueError, match="score is exactly zero"):
        sample_pc(lambda x, t: torch.zeros_like(x), x, ts, sde=sde)


# ---------------------------------------------------------------------------------------------
# Step formulas of the samplers (one step, noise reproduced from the generator)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_reverse_diffusion_predictor_is_the_reverse_of_the_forward_kernel(sde, gauss):
    # Song et al. 2021b, app. E: x_{t'} = x_t - f_i + G_i^2 s + G_i z with x_t = r x_{t'} + G_i z'
    from diffnotes.sde import _predictor

    t, t_next = 0.6, 0.55
    x = sde.prior_sample((8, 2), generator=gen(40), dtype=F64)
    score = gauss.score_model(sde)(x, t)
    out = _predictor("reverse_diffusion", sde, x, t, t_next, score, gen(41))
    z = torch.randn(x.shape, generator=gen(41), dtype=F64)
    r, G = sde.transition_coefs(t_next, t)
    assert torch.allclose(out, x - (r - 1) * x + G**2 * score + G * z, rtol=1e-12, atol=1e-12)
    # and, to first order in the step, it is the Euler-Maruyama step of the reverse SDE
    h = 1e-4
    out_h = _predictor("reverse_diffusion", sde, x, t, t - h, score, gen(41))
    em_h = _predictor("euler_maruyama", sde, x, t, t - h, score, gen(41))
    assert ((out_h - em_h).abs() / math.sqrt(h)).max() < 1e-2 * max(1.0, float(sde.diffusion(t)))


def test_pc_corrector_step_size_follows_the_target_snr(gauss):
    # Song et al. 2021b, Algorithm 5: eps = 2 alpha (snr |z| / |s|)^2, x += eps s + sqrt(2 eps) z
    sde, snr = VPSDE(), 0.16
    sm = gauss.score_model(sde)
    x = sde.prior_sample((6, 2), generator=gen(42), dtype=F64)
    ts = torch.tensor([0.5, 0.45], dtype=F64)
    full = sample_pc(sm, x, ts, sde=sde, snr=snr, generator=gen(43))
    pred = sample_pc(sm, x, ts, sde=sde, snr=snr, n_corrector=0, generator=gen(43))
    g = gen(43)
    torch.randn(x.shape, generator=g, dtype=F64)  # the predictor's draw
    z = torch.randn(x.shape, generator=g, dtype=F64)
    s = sm(pred, 0.45)
    alpha = float((sde.marginal_coefs(0.5)[0] / sde.marginal_coefs(0.45)[0]) ** 2)
    eps = 2 * alpha * (snr * z.norm(dim=1) / s.norm(dim=1)) ** 2
    want = pred + eps[:, None] * s + (2 * eps[:, None]).sqrt() * z
    assert torch.allclose(full, want, rtol=1e-12, atol=1e-12)
    # the realised signal-to-noise ratio of the update is snr * sqrt(alpha)
    ratio = (eps[:, None] * s).norm(dim=1) / ((2 * eps[:, None]).sqrt() * z).norm(dim=1)
    assert torch.allclose(ratio, torch.full_like(ratio, snr * math.sqrt(alpha)), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Continuous-time DSM and annealed Langevin (diffnotes.score_matching)
# ---------------------------------------------------------------------------------------------
from diffnotes.score_matching import annealed_langevin, dsm_loss_continuous, smld_sigmas  # noqa: E402


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_dsm_loss_continuous_parts(sde, gauss):
    x0 = gauss.sample(64, generator=gen(50))
    seen = {}

    def model(x_t, t):
        seen["t"] = t
        return torch.zeros_like(x_t)

    loss, parts = dsm_loss_continuous(model, x0, sde, t_min=0.2, generator=gen(51), return_parts=True)
    t, eps = parts["t"], parts["eps"]
    assert t.dtype == F64 and bool(((t >= 0.2) & (t <= sde.T)).all()) and t.unique().numel() == 64
    assert torch.equal(seen["t"], t)
    m, s = sde.marginal_coefs(t)
    assert torch.allclose(parts["x_t"], m[:, None] * x0 + s[:, None] * eps, rtol=1e-12)
    # zero score: weighted loss = mean |eps|^2 / D; unweighted = mean |eps|^2 / (D s^2)
    assert torch.allclose(loss, eps.pow(2).mean(1).mean(), rtol=1e-12)
    loss_u = dsm_loss_continuous(model, x0, sde, t_min=0.2, weighting="none", generator=gen(51))
    assert torch.allclose(loss_u, (eps.pow(2).mean(1) / s**2).mean(), rtol=1e-12)
    # the same generator gives the same loss
    assert torch.equal(loss, dsm_loss_continuous(model, x0, sde, t_min=0.2, generator=gen(51)))


def test_dsm_loss_continuous_is_minimised_by_the_exact_score(gauss):
    # E[loss(s)] - E[loss(exact score)] = E[s^2 |s - exact|^2] > 0: the exact score has the smaller
    # loss on the same draws (paired, so the Monte-Carlo noise cancels to first order)
    sde = VPSDE()
    x0 = gauss.sample(20000, generator=gen(52))
    exact = gauss.score_model(sde)
    wrong = lambda x, t: 1.1 * exact(x, t)  # noqa: E731
    l_exact = dsm_loss_continuous(exact, x0, sde, generator=gen(53))
    l_wrong = dsm_loss_continuous(wrong, x0, sde, generator=gen(53))
    assert l_exact < l_wrong
    # with the exact score the weighted loss is E[|eps - E[eps|x_t]|^2] / D < 1
    assert 0.0 < float(l_exact) < 1.0


def test_dsm_loss_continuous_validates(gauss):
    x0 = gauss.sample(4, generator=gen(54))
    sm = gauss.score_model(VPSDE())
    for kw, word in [(dict(t_min=0.0), "t_min"), (dict(t_min=1.0), "t_min"), (dict(weighting="x"), "weighting")]:
        with pytest.raises(ValueError, match=word):
            dsm_loss_continuous(sm, x0, VPSDE(), **kw)
    with pytest.raises(ValueError, match="shape"):
        dsm_loss_continuous(lambda x, t: x[:, :1], x0, VPSDE())


def test_smld_sigmas():
    s = smld_sigmas()
    assert s.dtype == F64 and s.shape == (10,)
    assert torch.allclose(s[[0, -1]], torch.tensor([1.0, 0.01], dtype=F64), rtol=1e-12)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand(9), rtol=1e-12)  # geometric
    for kw in (dict(L=1), dict(sigma_L=0.0), dict(sigma_1=0.001)):
        with pytest.raises(ValueError):
            smld_sigmas(**kw)


def test_annealed_langevin_recovers_mixture(mix):
    # Song & Ermon 2019, Algorithm 1, on an exact noise-conditional score; the output law is p_{sigma_L}
    n, sig = 3000, smld_sigmas(4.0, 0.01, 10)
    x = torch.rand(n, 2, generator=gen(55), dtype=F64) * 6 - 3
    y = annealed_langevin(lambda x, s: mix.score(x, 1.0, s), x, sig, generator=gen(56))
    cov = mix.covariance + 0.01**2 * torch.eye(2, dtype=F64)
    d = y - y.mean(0)
    se_cov = (d[:, :, None] * d[:, None, :]).std(0) / math.sqrt(n)
    assert ((y.mean(0) - mix.mean).abs() <= Z * y.std(0) / math.sqrt(n) + 0.01).all()
    assert ((torch.cov(y.T) - cov).abs() <= Z * se_cov + 0.01).all()
    labels = mix.responsibilities(y, 1.0, 0.01).argmax(1)
    w_hat = torch.stack([(labels == k).double().mean() for k in range(2)])
    assert ((w_hat - mix.weights).abs() <= Z * torch.sqrt(mix.weights * (1 - mix.weights) / n) + 0.01).all()


def test_annealed_langevin_step_is_algorithm_1(gauss):
    # one level, one step: x + alpha/2 s + sqrt(alpha) z with alpha = eps sigma_i^2 / sigma_L^2
    x = torch.randn(5, 2, generator=gen(57), dtype=F64)
    sig = torch.tensor([0.5, 0.1], dtype=F64)
    seen = []
    y = annealed_langevin(lambda x, s: gauss.score(x, 1.0, s), x, sig, step_lr=1e-3, n_steps_each=1,
                          generator=gen(58), callback=seen.append)
    g = gen(58)
    want = x
    for k, s_k in enumerate(sig.tolist()):
        a = 1e-3 * s_k**2 / 0.1**2
        assert seen[k].i == k and seen[k].noise_std ** 2 == pytest.approx(a, rel=1e-12) and seen[k].t == s_k
        assert torch.equal(seen[k].x, want) and torch.allclose(seen[k].x0_hat, want + s_k**2 * gauss.score(want, 1.0, s_k))
        want = want + 0.5 * a * gauss.score(want, 1.0, s_k) + math.sqrt(a) * torch.randn(x.shape, generator=g, dtype=F64)
        assert torch.allclose(seen[k].x_next, want, rtol=1e-12, atol=1e-12) and seen[k].nfe == k + 1
    assert torch.allclose(y, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(y, annealed_langevin(lambda x, s: gauss.score(x, 1.0, s), x, sig, step_lr=1e-3,
                                            n_steps_each=1, generator=gen(58)))


def test_annealed_langevin_validates(gauss):
    x = torch.zeros(3, 2, dtype=F64)
    sm = lambda x, s: gauss.score(x, 1.0, s)  # noqa: E731
    for kw, word in [
        (dict(sigmas=[0.1, 0.5]), "decreasing"), (dict(sigmas=[1.0, 0.0]), "positive"),
        (dict(sigmas=[]), "at least one"), (dict(sigmas=[1.0], step_lr=0.0), "step_lr"),
        (dict(sigmas=[1.0], n_steps_each=0), "n_steps_each"),
    ]:
        with pytest.raises(ValueError, match=word):
            annealed_langevin(sm, x, **kw)
    with pytest.raises(ValueError, match="shape"):
        annealed_langevin(lambda x, s: x[:, :1], x, [1.0])
