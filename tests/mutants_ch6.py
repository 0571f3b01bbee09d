"""Mutants for chapter 6 (improved DDPM: cosine schedule, learned variance, hybrid loss, importance sampling)."""
import math

from mutation_harness import Mutant

NB = "06_improved_ddpm"
SETUP = "4e32b1bf"
COSINE = (SETUP, "eb40b340", "575c5b44")  # table checks_cosine; SymPy series and the code against it
VARIANCE = (SETUP, "481c647c")            # table checks_variance; v = -1, 0, 1 and random v in [-1, 1]
HYBRID_LESSON = (SETUP, "a4dd08ab")       # the hybrid loss's gradients, with autograd
IMPORTANCE = (SETUP, "cd2fe2f4", "e8616314", "128bd42b")  # table; LossAwareSampler: exact, Monte Carlo
# the longer verification of sections 1, 2, 3 and 5 lives in the chapter's appendix notebook
NB_APP = "appendix/06_improved_ddpm_appendix"
SETUP_APP = "a6a00001"
COSINE_APP = (SETUP_APP, "75e29fa6", "4d7ecc8a")      # table; moved pixels; the code against eq. 17, the clip
VARIANCE_APP = (SETUP_APP, "70fb4b24", "e9a7bfbd")    # table checks_variance; |v| > 1
HYBRID = (SETUP_APP, "a6a00005", "a43824a2", "2097af18")  # hybrid loss against the formulas by hand
FEW_STEPS = (SETUP_APP, "a6a00007", "0c94095d", "d6e3af45")  # the mixture; the spread-ratio table; its claims


def _cosine_no_offset(f):
    def cosine_schedule(T=1000, s=0.008, max_beta=0.999):
        return f(T, s=0.0, max_beta=max_beta)  # the offset s ignored
    return cosine_schedule


def _cosine_T_plus_1(f):
    def cosine_schedule(T=1000, s=0.008, max_beta=0.999):
        import torch

        from diffnotes.schedules import Schedule
        t = torch.arange(T + 1, dtype=torch.float64)
        fc = torch.cos((t / (T + 1) + s) / (1 + s) * math.pi / 2) ** 2  # T + 1 in the denominator
        ab = fc / fc[0]
        return Schedule(torch.clamp(1.0 - ab[1:] / ab[:-1], max=max_beta), name="cosine")
    return cosine_schedule


def _cosine_clip_099(f):
    def cosine_schedule(T=1000, s=0.008, max_beta=0.999):
        return f(T, s=s, max_beta=0.99)  # clip at 0.99 instead of 0.999
    return cosine_schedule


def _llv_weight_is_v(f):
    def learned_log_variance(v, beta_t, beta_tilde_t):
        return f(2 * v - 1, beta_t, beta_tilde_t)  # weight = v (the paper's convention) instead of (v + 1) / 2
    return learned_log_variance


def _llv_linear_space(f):
    def learned_log_variance(v, beta_t, beta_tilde_t):
        import torch
        lo, hi = f(-torch.ones_like(v), beta_t, beta_tilde_t).exp(), f(torch.ones_like(v), beta_t, beta_tilde_t).exp()
        w = (v + 1) / 2
        return torch.log(w * hi + (1 - w) * lo)  # interpolate the variances, not their logarithms
    return learned_log_variance


def _llv_clamped(f):
    def learned_log_variance(v, beta_t, beta_tilde_t):
        return f(v.clamp(-1.0, 1.0), beta_t, beta_tilde_t)  # v silently restricted to [-1, 1]
    return learned_log_variance


def _kl_drop_minus_one(f):
    def normal_kl(mean1, logvar1, mean2, logvar2):
        return f(mean1, logvar1, mean2, logvar2) + 0.5  # the "- 1" of the closed form dropped
    return normal_kl


def _kl_log_sign(f):
    def normal_kl(mean1, logvar1, mean2, logvar2):
        return f(mean1, logvar1, mean2, logvar2) + (logvar1 - logvar2)  # log(s2^2/s1^2) with the wrong sign
    return normal_kl


def _decoder_sqrt_dropped(f):
    def discretized_gaussian_log_likelihood(x, *, means, log_scales):
        return f(x, means=means, log_scales=2 * log_scales)  # log-variance passed as log-std
    return discretized_gaussian_log_likelihood


def _l_simple_sqrt(f):
    def l_simple(eps_hat, eps, *, reduction="mean"):
        return f(eps_hat, eps, reduction=reduction).sqrt()  # RMSE instead of MSE
    return l_simple


def _hybrid_lambda(f):
    def hybrid_loss(eps_hat, v, eps, x_0, x_t, t, schedule, lambda_vlb=0.001):
        out = f(eps_hat, v, eps, x_0, x_t, t, schedule, lambda_vlb)
        out["loss"] = out["l_simple"] + 10 * lambda_vlb * out["l_vlb"]  # lambda ten times too large
        return out
    return hybrid_loss


def _hybrid_no_stop_gradient(f):
    def hybrid_loss(eps_hat, v, eps, x_0, x_t, t, schedule, lambda_vlb=0.001):
        out = f(eps_hat, v, eps, x_0, x_t, t, schedule, lambda_vlb)
        leak = (eps_hat - eps_hat.detach()).flatten(1).mean(1)  # zero in value, but the gradient reaches eps_hat
        out["l_vlb"] = out["l_vlb"] + leak
        out["loss"] = out["loss"] + lambda_vlb * leak
        return out
    return hybrid_loss


def _vlb_term_nats(f):
    def vlb_term(*args, **kw):
        return f(*args, **kw) * math.log(2)  # nats per dimension reported as bits
    return vlb_term


def _importance_weights_no_T(f):
    def importance_weights(p, t):
        return f(p, t) * p.numel()  # 1 / p_t instead of 1 / (T p_t)
    return importance_weights


def _importance_probs_no_sqrt(f):
    def importance_probs(history_sq, *, uniform_prob=0.0):
        return f(history_sq**2, uniform_prob=uniform_prob)  # p_t proportional to E[L_t^2], not its square root
    return importance_probs


def _ddpm_variances_swapped(f):
    def sample_ddpm(model, x, timesteps, *, schedule, variance="beta_tilde", **kw):
        other = {"beta_tilde": "beta", "beta": "beta_tilde"}.get(variance, variance)
        return f(model, x, timesteps, schedule=schedule, variance=other, **kw)  # the two fixed variances swapped
    return sample_ddpm


MUTANTS = [
    Mutant("ch6 cosine_schedule: offset s ignored", NB, COSINE, "schedules.cosine_schedule", _cosine_no_offset),
    Mutant("ch6 cosine_schedule: T+1 in f(t)", NB, COSINE, "schedules.cosine_schedule", _cosine_T_plus_1),
    Mutant("ch6 cosine_schedule: clip at 0.99", NB_APP, COSINE_APP, "schedules.cosine_schedule", _cosine_clip_099),
    Mutant("ch6 learned_log_variance: weight v, not (v+1)/2", NB, VARIANCE, "likelihood.learned_log_variance",
           _llv_weight_is_v),
    Mutant("ch6 learned_log_variance: linear, not log space", NB, VARIANCE, "likelihood.learned_log_variance",
           _llv_linear_space),
    Mutant("ch6 learned_log_variance: v clamped to [-1, 1]", NB_APP, VARIANCE_APP, "likelihood.learned_log_variance",
           _llv_clamped),
    Mutant("ch6 normal_kl: the -1 dropped", NB_APP, HYBRID, "likelihood.normal_kl", _kl_drop_minus_one),
    Mutant("ch6 normal_kl: sign of the log ratio", NB_APP, HYBRID, "likelihood.normal_kl", _kl_log_sign),
    Mutant("ch6 discretized decoder: log-variance as log-std", NB_APP, HYBRID,
           "likelihood.discretized_gaussian_log_likelihood", _decoder_sqrt_dropped),
    Mutant("ch6 l_simple: square root added", NB_APP, HYBRID, "losses.l_simple", _l_simple_sqrt),
    Mutant("ch6 hybrid_loss: lambda x10", NB_APP, HYBRID, "losses.hybrid_loss", _hybrid_lambda),
    Mutant("ch6 hybrid_loss: no stop-gradient on the mean", NB, HYBRID_LESSON, "losses.hybrid_loss",
           _hybrid_no_stop_gradient, "the lesson's autograd check: d L_vlb / d eps_hat must be exactly zero"),
    Mutant("ch6 vlb_term: nats, not bits", NB_APP, HYBRID, "likelihood.vlb_term", _vlb_term_nats),
    Mutant("ch6 importance_weights: 1/p_t, not 1/(T p_t)", NB, IMPORTANCE, "losses.importance_weights",
           _importance_weights_no_T),
    Mutant("ch6 importance_probs: no square root", NB, IMPORTANCE, "losses.importance_probs",
           _importance_probs_no_sqrt),
    Mutant("ch6 sample_ddpm: beta and beta_tilde swapped", NB_APP, FEW_STEPS, "samplers.sample_ddpm",
           _ddpm_variances_swapped, "the spread-ratio claims of section 5 (between the bounds; 5 linear steps)"),
]
