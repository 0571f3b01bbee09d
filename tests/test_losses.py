"""Tests for diffnotes.losses: L_simple, denoising score matching, the hybrid loss, importance
sampling of t and the recipe's loss weights; properties first, then Monte-Carlo checks, pinned
numbers and error messages.

Monte-Carlo tolerances: an estimate from n independent draws is compared with its exact value
within 4 standard errors (SE = sample std / sqrt(n)); a correct implementation fails such a check
with probability ~6e-5, and the seeds are fixed, so the tests are deterministic.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffnotes import likelihood, losses as L
from diffnotes.forward import posterior_mean, q_sample, x0_from_eps
from diffnotes.oracles import Gaussian
from diffnotes.schedules import cosine_schedule, linear_schedule

from conftest import gen
from conftest import images8 as images

F64 = torch.float64
N_SE = 4.0


# =========================================================================== l_simple
def test_l_simple_is_the_per_sample_mean_squared_error():
    g = gen(1)
    eps, eps_hat = torch.randn(5, 3, 2, 2, generator=g, dtype=F64), torch.randn(5, 3, 2, 2, generator=g, dtype=F64)
    per = L.l_simple(eps_hat, eps, reduction="none")
    assert per.shape == (5,)
    for i in range(5):
        assert per[i].item() == pytest.approx(((eps[i] - eps_hat[i]) ** 2).sum().item() / 12, rel=1e-14)
    assert L.l_simple(eps_hat, eps).item() == pytest.approx(per.mean().item(), rel=1e-14)
    assert L.l_simple(eps, eps, reduction="none").eq(0).all()


def test_l_simple_rejects_mismatched_shapes_and_unknown_reduction():
    a = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"eps must have the shape of eps_hat \(2, 3\), got \(2, 4\)"):
        L.l_simple(a, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'none'; got 'sum'"):
        L.l_simple(a, a, reduction="sum")


# =========================================================================== DSM
def test_dsm_with_score_from_eps_equals_l_simple_exactly():
    g = gen(11)
    x0 = torch.randn(6, 2, 3, generator=g, dtype=F64)
    eps = torch.randn(6, 2, 3, generator=g, dtype=F64)
    eps_hat = eps + 0.3 * torch.randn(6, 2, 3, generator=g, dtype=F64)
    alpha = torch.rand(6, generator=g, dtype=F64) * 0.9 + 0.05
    sigma = torch.sqrt(1 - alpha**2)
    x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
    score_hat = -eps_hat / sigma[:, None, None]
    simple = L.l_simple(eps_hat, eps, reduction="none")
    weighted = L.dsm_loss(score_hat, x_t, x0, alpha, sigma, reduction="none")
    plain = L.dsm_loss(score_hat, x_t, x0, alpha, sigma, weighting="none", reduction="none")
    assert torch.allclose(weighted, simple, rtol=1e-12)
    assert torch.allclose(plain, simple / sigma**2, rtol=1e-12)
    # VE process (alpha = 1), scalar sigma
    x_t = x0 + 2.5 * eps
    assert torch.allclose(L.dsm_loss(-eps_hat / 2.5, x_t, x0, 1.0, 2.5), L.l_simple(eps_hat, eps), rtol=1e-12)


def test_dsm_loss_differs_from_the_true_score_error_by_a_constant():
    # Vincent 2011: E||s(x_t) - grad log q(x_t|x_0)||^2 = E||s(x_t) - grad log p_t(x_t)||^2 + C, so for
    # the exact score s* and any perturbation d(x_t), DSM(s* + d) - DSM(s*) has mean E||d||^2.
    data = Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 0.8]])
    n, alpha, sigma = 100_000, 0.8, 0.6
    g = gen(12)
    x0 = data.sample(n, generator=g)
    x_t = alpha * x0 + sigma * torch.randn(n, 2, generator=g, dtype=F64)
    s_star = data.score(x_t, alpha, sigma)
    d = 0.3 * torch.tanh(x_t) + 0.1
    diff = (L.dsm_loss(s_star + d, x_t, x0, alpha, sigma, weighting="none", reduction="none")
            - L.dsm_loss(s_star, x_t, x0, alpha, sigma, weighting="none", reduction="none")
            - (d**2).mean(1))
    se = diff.std().item() / math.sqrt(n)
    assert abs(diff.mean().item()) < N_SE * se
    # a perturbation that depends on x_0 is not orthogonal: the same statistic is far from 0
    d0 = 0.3 * x0
    diff0 = (L.dsm_loss(s_star + d0, x_t, x0, alpha, sigma, weighting="none", reduction="none")
             - L.dsm_loss(s_star, x_t, x0, alpha, sigma, weighting="none", reduction="none") - (d0**2).mean(1))
    assert abs(diff0.mean().item()) > 10 * N_SE * diff0.std().item() / math.sqrt(n)


def test_dsm_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"sigma must lie in \(0.0, inf\)"):
        L.dsm_loss(x, x, x, 1.0, 0.0)
    with pytest.raises(ValueError, match="weighting must be one of 'sigma2', 'none'"):
        L.dsm_loss(x, x, x, 1.0, 1.0, weighting="lambda")
    with pytest.raises(ValueError, match=r"x_0 must have the shape of score_hat \(2, 3\)"):
        L.dsm_loss(x, x, torch.zeros(2, 4), 1.0, 1.0)


# =========================================================================== hybrid loss
def _hybrid_inputs(seed=13):
    sch = linear_schedule(100)
    g = gen(seed)
    x0 = images(5, (2, 3, 3), seed=seed)
    t = torch.tensor([0, 3, 50, 99, 20])
    eps = torch.randn(x0.shape, generator=g, dtype=F64)
    x_t = q_sample(x0, sch.at(t)["alpha_bar"], eps=eps)
    eps_hat = (eps + 0.2 * torch.randn(x0.shape, generator=g, dtype=F64)).requires_grad_(True)
    raw = torch.randn(x0.shape, generator=g, dtype=F64).requires_grad_(True)
    return sch, x0, t, eps, x_t, eps_hat, raw


def test_hybrid_vlb_part_has_no_gradient_wrt_eps_hat_but_trains_v():
    sch, x0, t, eps, x_t, eps_hat, raw = _hybrid_inputs()
    out = L.hybrid_loss(eps_hat, torch.tanh(raw), eps, x0, x_t, t, sch)
    g_eps, g_v = torch.autograd.grad(out["l_vlb"].sum(), (eps_hat, raw), allow_unused=True)
    assert g_eps is None or g_eps.abs().max().item() == 0.0
    assert g_v.abs().min().item() > 0 and torch.isfinite(g_v).all()
    # the total loss's gradient wrt eps_hat is that of L_simple alone
    g_total = torch.autograd.grad(out["loss"].sum(), eps_hat)[0]
    g_simple = torch.autograd.grad(L.l_simple(eps_hat, eps, reduction="none").sum(), eps_hat)[0]
    assert torch.allclose(g_total, g_simple, rtol=1e-14)


def test_hybrid_loss_parts():
    sch, x0, t, eps, x_t, eps_hat, raw = _hybrid_inputs()
    v = torch.tanh(raw)
    out = L.hybrid_loss(eps_hat, v, eps, x0, x_t, t, sch, lambda_vlb=0.01)
    assert torch.equal(out["l_simple"], L.l_simple(eps_hat, eps, reduction="none"))
    assert torch.allclose(out["loss"], out["l_simple"] + 0.01 * out["l_vlb"], rtol=1e-15)
    # l_vlb = T * vlb_term(mu_theta(eps_hat), learned log-variance) in bits/dim
    c = sch.at(t, like=x0)
    x0_hat = x0_from_eps(x_t, eps_hat, c["alpha_bar"])
    mean = posterior_mean(x0_hat, x_t, c["alpha_bar"], c["alpha_bar_prev"], c["beta"])
    bt = c["beta_tilde"].clone()
    bt[t == 0] = sch.beta_tilde[1]
    lv = likelihood.learned_log_variance(v, c["beta"], bt)
    ref = 100 * likelihood.vlb_term(x0, x_t, t, model_mean=mean, model_log_variance=lv, schedule=sch)
    assert torch.allclose(out["l_vlb"], ref, rtol=1e-12)
    # any real v is allowed (no constraint, Nichol & Dhariwal 2021 sec. 3.1): v outside [-1, 1] gives a
    # finite bound term, and a v beyond the ends changes the value
    wide = L.hybrid_loss(eps_hat, 3 * raw, eps, x0, x_t, t, sch)
    assert bool(torch.isfinite(wide["l_vlb"]).all()) and not torch.allclose(wide["l_vlb"], out["l_vlb"])
    # perfect model (eps_hat = eps, variance beta_tilde) has l_vlb = 0 at every step but the first
    perfect = L.hybrid_loss(eps, -torch.ones_like(eps), eps, x0, x_t, t, sch)
    assert perfect["l_simple"].abs().max().item() == 0.0
    assert perfect["l_vlb"][t > 0].abs().max().item() < 1e-8
    assert bool((perfect["l_vlb"][t == 0] > 0).all())


def test_hybrid_loss_errors():
    sch, x0, t, eps, x_t, eps_hat, raw = _hybrid_inputs()
    with pytest.raises(ValueError, match="v must be finite"):
        L.hybrid_loss(eps_hat, raw.detach() * float("nan"), eps, x0, x_t, t, sch)
    with pytest.raises(ValueError, match="x_0 must hold 8-bit data"):
        L.hybrid_loss(eps_hat, torch.tanh(raw), eps, x0 * 0.999, x_t, t, sch)
    with pytest.raises(ValueError, match=r"v must have the shape of eps_hat"):
        L.hybrid_loss(eps_hat, torch.zeros(5, 2), eps, x0, x_t, t, sch)
    with pytest.raises(ValueError, match=r"t must be an int or a tensor of shape \[B\] with B=5"):
        L.hybrid_loss(eps_hat, torch.tanh(raw), eps, x0, x_t, t[:3], sch)
    with pytest.raises(ValueError, match=r"lambda_vlb must lie in \[0.0, inf\)"):
        L.hybrid_loss(eps_hat, torch.tanh(raw), eps, x0, x_t, t, sch, lambda_vlb=-1.0)


# =========================================================================== importance sampling
def _filled_sampler(losses_per_t, history=10):
    T = losses_per_t.shape[0]
    s = L.LossAwareSampler(T, history=history)
    for _ in range(history):
        s.update(torch.arange(T), losses_per_t)
    return s


def test_importance_sampler_warm_up_is_uniform_until_every_step_has_a_full_history():
    T = 5
    s = L.LossAwareSampler(T)
    for i in range(10 * T - 1):  # one short of a full history for t = T-1
        t = i % T
        s.update(torch.tensor([t]), torch.tensor([float(t + 1)]))
    assert not s.warmed_up
    assert torch.equal(s.probs(), torch.full((T,), 1 / T, dtype=F64))
    t, w = s.sample_t(64, generator=gen(14))
    assert torch.equal(w, torch.ones(64)) and set(t.tolist()) == set(range(T))
    s.update(torch.tensor([T - 1]), torch.tensor([float(T)]))
    assert s.warmed_up
    p = s.probs()
    assert torch.allclose(p, torch.arange(1, T + 1, dtype=F64) / 15, rtol=1e-14)  # p_t ∝ sqrt(E[L_t^2]) = t+1


def test_importance_history_keeps_the_last_ten_squared_values():
    s = L.LossAwareSampler(2)
    vals = torch.arange(1, 16, dtype=F64)
    for v in vals:
        s.update(torch.tensor([0, 1]), torch.stack([v, 2 * v]))
    assert torch.equal(s.history_sq[0], vals[5:] ** 2)
    rms = torch.sqrt((vals[5:] ** 2).mean())
    assert torch.allclose(s.probs(), torch.stack([rms, 2 * rms]) / (3 * rms), rtol=1e-14)


def test_importance_weights_make_the_estimator_unbiased_by_exact_enumeration():
    T = 20
    g = gen(15)
    s = L.LossAwareSampler(T)
    for _ in range(10):  # noisy histories
        s.update(torch.arange(T), torch.rand(T, generator=g, dtype=F64) * torch.linspace(0.1, 3, T, dtype=F64))
    p = s.probs()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-14)
    L_t = torch.rand(T, generator=g, dtype=F64) + 0.5  # any loss profile
    w = L.importance_weights(p, torch.arange(T))
    assert (p * w * L_t).sum().item() == pytest.approx(L_t.mean().item(), rel=1e-13)
    # and by sampling: draws of t follow p, weights are 1/(T p_t), and the weighted mean is unbiased
    n = 40_000
    t, w = s.sample_t(n, generator=gen(16), dtype=F64)
    assert torch.allclose(w, 1 / (T * p[t]), rtol=1e-14)
    freq = torch.bincount(t, minlength=T).to(F64) / n
    assert bool(((freq - p).abs() <= N_SE * torch.sqrt(p * (1 - p) / n) + 1e-12).all())
    est = w * L_t[t]
    assert abs(est.mean().item() - L_t.mean().item()) < N_SE * est.std().item() / math.sqrt(n)


def test_importance_sampling_reduces_variance_for_a_skewed_loss_profile():
    T = 50
    L_t = 10.0 * torch.exp(-torch.arange(T, dtype=F64) / 3.0) + 0.01  # large at small t, as the VLB terms
    mean = L_t.mean()
    var_uniform = (L_t**2).mean() - mean**2
    # exact losses in the history: p ∝ L_t, so w_t L_t = mean for every t and the variance is 0
    p = _filled_sampler(L_t).probs()
    w = L.importance_weights(p, torch.arange(T))
    var_is = (p * (w * L_t) ** 2).sum() - mean**2
    assert abs(var_is.item()) < 1e-12 * var_uniform.item()
    # noisy histories (losses drawn around L_t) still cut the variance by a large factor
    s = L.LossAwareSampler(T)
    g = gen(17)
    for _ in range(10):
        s.update(torch.arange(T), L_t * (0.5 + torch.rand(T, generator=g, dtype=F64)))
    p = s.probs()
    w = L.importance_weights(p, torch.arange(T))
    var_is = (p * (w * L_t) ** 2).sum() - mean**2
    assert var_is.item() < 0.1 * var_uniform.item()


def test_importance_uniform_mix_and_reproducibility():
    L_t = torch.tensor([1.0, 3.0], dtype=F64)
    s = _filled_sampler(L_t)
    s.uniform_prob = 0.1
    assert torch.allclose(s.probs(), 0.9 * torch.tensor([0.25, 0.75], dtype=F64) + 0.05, rtol=1e-14)
    a = s.sample_t(16, generator=gen(18))
    b = s.sample_t(16, generator=gen(18))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].dtype == torch.long and a[1].dtype == torch.get_default_dtype()


def test_importance_errors():
    s = L.LossAwareSampler(4)
    with pytest.raises(ValueError, match="t and losses must have the same length, got 2 and 3"):
        s.update(torch.tensor([0, 1]), torch.zeros(3))
    with pytest.raises(ValueError, match=r"t must hold integer indices in \[0, 3\], got \[4\]"):
        s.update(torch.tensor([4]), torch.zeros(1))
    with pytest.raises(ValueError, match="losses must be finite"):
        s.update(torch.tensor([0]), torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match=r"batch must be an integer in \[1, inf\], got 0"):
        s.sample_t(0)
    with pytest.raises(ValueError, match=r"uniform_prob must lie in \[0.0, 1.0\]"):
        L.LossAwareSampler(4, uniform_prob=2.0)
    with pytest.raises(ValueError, match="nonzero loss history.*uniform_prob > 0"):
        L.importance_probs(torch.tensor([[1.0], [0.0]]))
    with pytest.raises(ValueError, match=r"history_sq must have shape \[T, K\]"):
        L.importance_probs(torch.ones(3))
    with pytest.raises(ValueError, match="p_t must be > 0"):
        L.importance_weights(torch.tensor([1.0, 0.0]), torch.tensor([1]))


# --------------------------------------------------------------------------- recipe: loss weights and t sampling
@settings(max_examples=200, deadline=None)
@given(st.floats(1e-6, 1e6), st.floats(1e-3, 1e3))
def test_min_snr_weight_is_one_up_to_gamma_and_gamma_over_snr_above(snr, gamma):
    w = float(L.min_snr_weight(torch.tensor(snr, dtype=F64), gamma))
    if snr <= gamma:
        assert w == 1.0
    else:
        assert w == pytest.approx(gamma / snr, rel=1e-12) and w < 1.0
    # the weight of the x0-loss it stands for: w_eps * SNR = min(SNR, gamma) (Hang et al. 2023)
    assert w * snr == pytest.approx(min(snr, gamma), rel=1e-12)


def test_edm_weight_turns_edms_denoiser_loss_into_an_eps_loss():
    """EDM's lambda(sigma) ||D - x0||^2, with the denoiser D that an eps-network implies on the VP
    sample x_t = sqrt(ab) (x0 + sigma eps), sigma^2 = (1 - ab)/ab, equals edm_weight * ||eps_hat - eps||^2."""
    sched, sigma_data = linear_schedule(1000), 0.5
    t = torch.tensor([0, 10, 100, 400, 700, 999])
    ab = sched.alpha_bar[t].reshape(-1, 1, 1, 1)
    x0, eps, eps_hat = images(6, seed=1), torch.randn(6, 3, 4, 4, generator=gen(2), dtype=F64), \
        torch.randn(6, 3, 4, 4, generator=gen(3), dtype=F64)
    sigma = ((1 - ab) / ab).sqrt()
    x_t = ab.sqrt() * (x0 + sigma * eps)
    D = x_t / ab.sqrt() - sigma * eps_hat
    lam = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2  # EDM, Table 1
    edm_loss = (lam * (D - x0) ** 2).flatten(1).mean(1)
    ours = L.edm_weight(sched.snr[t], sigma_data) * ((eps_hat - eps) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(ours, edm_loss, rtol=1e-9, atol=0)
    w = L.edm_weight(sched.snr, sigma_data)
    assert bool((w[1:] > w[:-1]).all()) and float(w[0]) == pytest.approx(1.0, abs=1e-3)
    assert float(w[-1]) > 9e4  # the last step of the linear schedule: 1 + 1/(0.25 * 4e-5)


def test_timestep_loss_weights_and_weighted_l_simple():
    sched = cosine_schedule(200)
    ones = L.timestep_loss_weights(sched, "l_simple")
    assert ones.shape == (200,) and bool((ones == 1).all())
    torch.testing.assert_close(L.timestep_loss_weights(sched, "min_snr", gamma=2.0),
                               torch.clamp(2.0 / sched.snr, max=1.0))
    torch.testing.assert_close(L.timestep_loss_weights(sched, "edm", sigma_data=0.3),
                               1 + 1 / (0.09 * sched.snr))
    eps_hat, eps = torch.randn(5, 3, 4, 4, generator=gen(0)), torch.randn(5, 3, 4, 4, generator=gen(1))
    torch.testing.assert_close(L.weighted_l_simple(eps_hat, eps, torch.ones(5)), L.l_simple(eps_hat, eps))
    w = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0])
    by_hand = sum(float(w[b]) * float(((eps_hat[b] - eps[b]) ** 2).mean()) for b in range(5)) / 5
    assert float(L.weighted_l_simple(eps_hat, eps, w)) == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match="weighting must be one of"):
        L.timestep_loss_weights(sched, "p2")
    with pytest.raises(ValueError, match="gamma"):
        L.timestep_loss_weights(sched, "min_snr", gamma=0.0)
    with pytest.raises(ValueError, match="sigma_data"):
        L.edm_weight(sched.snr, sigma_data=-1.0)
    with pytest.raises(ValueError, match=r"weight must have shape \[B\]"):
        L.weighted_l_simple(eps_hat, eps, torch.ones(4))
    with pytest.raises(ValueError, match="weight must lie"):
        L.weighted_l_simple(eps_hat, eps, -w)


@pytest.mark.parametrize("sched", [linear_schedule(1000), cosine_schedule(100), linear_schedule(2)])
def test_nearest_log_snr_index_is_the_argmin(sched):
    lam = L.schedule_log_snr(sched)
    torch.testing.assert_close(lam, torch.log(sched.snr))
    assert bool((lam[1:] < lam[:-1]).all())
    x = torch.cat([torch.linspace(float(lam[-1]) - 3, float(lam[0]) + 3, 5001, dtype=F64),
                   lam, torch.randn(2000, generator=gen(0), dtype=F64) * 6])
    t = L.nearest_log_snr_index(sched, x)
    brute = (lam[None, :] - x[:, None]).abs().argmin(1)
    same = (lam[t] - x).abs() == (lam[brute] - x).abs()  # equal distance (a tie) counts as nearest too
    assert bool(same.all())
    assert t.dtype == torch.long and bool((t[:5001][1:] <= t[:5001][:-1]).all())  # more log-SNR, cleaner step


def test_log_normal_t_has_the_asked_log_snr_moments():
    """Well inside the linear schedule's range (lambda from -10.1 to 9.2), the log-SNR of the drawn
    steps has mean P_mean and std P_std within 4 standard errors (n = 200 000); the rounding to the
    nearest step (spacing about 0.01 in the middle of the range) is far below that."""
    sched, n, m, s = linear_schedule(1000), 200_000, 0.5, 2.0
    t = L.sample_t_log_normal(sched, n, mean=m, std=s, generator=gen(0))
    lam = L.schedule_log_snr(sched)[t]
    se_mean, se_std = s / math.sqrt(n), s / math.sqrt(2 * n)
    assert abs(float(lam.mean()) - m) < N_SE * se_mean
    assert abs(float(lam.std()) - s) < N_SE * se_std
    # a shifted mean moves the draws: a wrong sign or a mean in ln(sigma) would fail this
    t2 = L.sample_t_log_normal(sched, n, mean=-3.0, std=s, generator=gen(0))
    assert abs(float(L.schedule_log_snr(sched)[t2].mean()) + 3.0) < N_SE * se_mean


def test_log_normal_t_gives_each_step_the_normal_mass_of_its_interval():
    """EDM's defaults (lambda ~ N(2.4, 2.4^2)) reach past the cleanest step: index t gets the normal
    mass between the midpoints around lambda_t, the ends get the tails. Checked on groups of steps."""
    from scipy.stats import norm

    sched, n = linear_schedule(1000), 400_000
    lam = L.schedule_log_snr(sched).numpy()
    mids = (lam[1:] + lam[:-1]) / 2
    upper = np.concatenate([[np.inf], mids])  # interval of t: [lower_t, upper_t)
    lower = np.concatenate([mids, [-np.inf]])
    p = norm.cdf((upper - 2.4) / 2.4) - norm.cdf((lower - 2.4) / 2.4)
    assert p.sum() == pytest.approx(1.0)
    t = L.sample_t_log_normal(sched, n, generator=gen(5)).numpy()
    for lo, hi in [(0, 1), (1, 5), (5, 50), (50, 200), (200, 400), (400, 1000)]:
        expected = p[lo:hi].sum()
        got = np.mean((t >= lo) & (t < hi))
        assert abs(got - expected) < N_SE * math.sqrt(expected * (1 - expected) / n), (lo, hi, got, expected)
    assert p[0] > 1e-3  # the tail beyond lambda_0 is not negligible at these settings


def test_log_normal_t_reproducible_and_errors():
    sched = linear_schedule(100)
    a = L.sample_t_log_normal(sched, 64, generator=gen(3))
    b = L.sample_t_log_normal(sched, 64, generator=gen(3))
    assert torch.equal(a, b) and a.shape == (64,) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) <= 99
    with pytest.raises(ValueError, match="std"):
        L.sample_t_log_normal(sched, 4, std=0.0)
    with pytest.raises(ValueError, match="mean"):
        L.sample_t_log_normal(sched, 4, mean=float("nan"))
    with pytest.raises(ValueError, match="n must be"):
        L.sample_t_log_normal(sched, -1)
    with pytest.raises(ValueError, match="log_snr"):
        L.nearest_log_snr_index(sched, torch.tensor([float("inf")]))
