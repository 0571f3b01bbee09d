"""Mutants for chapter 4 (the note's DDIM sampler as its author wrote it): the package functions its checks rest on."""
import torch

from mutation_harness import Mutant

NB = "04_buggy_ddim"
# setup (with the 2-D Gaussian oracle), the note's code as written, and the switchable step/loop with package_step
BASE = ("384c11af", "d3b3ef6e", "e8f9a0b1")
GUARD = BASE + ("sch04a", "40dd9a37")                                 # note_loop(fixed=SLIPS) == samplers.sample_ddim
SYMPY = ("384c11af", "dbae30e9")                              # c1, mean, variance, the eta == 0 branch
MC_STEP = BASE + ("dbae30e9", "3aaa1fd2", "374aa9c7", "717e3cca")   # one-step Monte Carlo vs SymPy
EXACT = BASE + ("f5d6001b",)                                   # exact propagation, the variants, the single-point chains
# the checklist table; a sign flip of the direction term keeps every marginal, only "eta = 1 is DDPM" sees it
CHECKLIST = EXACT + ("dbae30e9", "3aaa1fd2", "374aa9c7", "7048ab12")
DRIFT = EXACT + ("a0e0e0e8",)                                  # the single point: on target, below it, undefined
FRECHET = EXACT + ("2805fc55",)                     # which slip moves the output law (two-sided checks)
SAMPLES = EXACT + ("ce2bea60",)                     # final samples on the mixture and the five points
# the shipped model lives in the chapter's appendix, which repeats the setup, the note's code, note_step and the variants
NB_APP = "appendix/04_buggy_ddim_appendix"
CIFAR = ("a4a00001", "a4a00003", "a4a00004", "a4a00006", "664dd42c", "9f0a1b2d", "ce1776ac", "0a1b2c3e")   # guards, variants, claims


def _sigma_without_root(f):
    # eq. 16 with the square root of (1 - ab/abp) dropped
    def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):
        s = f(alpha_bar_t, alpha_bar_prev, eta)
        ratio = 1 - torch.as_tensor(alpha_bar_t, dtype=torch.float64) / torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
        return s * ratio.sqrt()
    return ddim_sigma


def _sigma_sqrt_eta(f):
    # eta taken under the root: sigma(sqrt(eta)), right at eta = 0 and 1, too much noise in between
    return lambda alpha_bar_t, alpha_bar_prev, eta: f(alpha_bar_t, alpha_bar_prev, eta ** 0.5)


def _step_direction_sign(f):
    # the direction term sqrt(1 - abp - sigma^2) eps_hat enters with a minus sign
    def ddim_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, sigma_t=0.0, **kw):
        out = f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, sigma_t=sigma_t, **kw)
        abp = torch.as_tensor(alpha_bar_prev, dtype=torch.float64)
        c = (1 - abp - torch.as_tensor(sigma_t, dtype=torch.float64) ** 2).clamp_min(0).sqrt()
        return out - 2 * c * eps_hat
    return ddim_step


def _loop_stops_early(f):
    # the loop's range off by one: the last visited index (the step to alpha_bar = 1) is skipped
    return lambda model, x, timesteps, **kw: f(model, x, timesteps[:-1], **kw)


def _uniform_off_by_one(f):
    return lambda T, S: f(T, S) + 1


def _uniform_trailing(f):
    # the grid shifted up to start at T - 1 (999, 979, ..., 19): the note's start at 980 would no longer be a slip
    def uniform_timesteps(T, S):
        ts = f(T, S)
        return ts + (T - 1 - ts[0])
    return uniform_timesteps


def _returns_before_last_step(f):
    # the note's last_step in the package: return x at the last visited index, before the step to alpha_bar = 1
    def sample_ddim(model, x, timesteps, *, callback=None, **kw):
        seen = []

        def record(info):
            seen.append(info.x)
            if callback is not None:
                callback(info)
        f(model, x, timesteps, callback=record, **kw)
        return seen[-1]
    return sample_ddim


def _ddpm_noise_sign(f):
    def ddpm_step(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, *, noise=None, **kw):
        return f(x_t, eps_hat, alpha_bar_t, alpha_bar_prev, noise=None if noise is None else -noise * 1.01, **kw)
    return ddpm_step


def _eps_from_x0_no_root(f):
    def eps_from_x0(x_t, x_0, alpha_bar_t):
        ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
        return f(x_t, x_0, alpha_bar_t) * (1 - ab).sqrt()      # divides by 1 - ab instead of its root
    return eps_from_x0


def _expectation_second_moment(f):
    # E[eps^2] taken as 2 instead of 1 (a wrong Gaussian moment)
    def gaussian_expectation(expr, noises):
        import sympy as sp
        return f(sp.sympify(expr).subs({n: sp.sqrt(2) * n for n in noises}), noises)
    return gaussian_expectation


def _point_eps_scaled(cls):
    # the single-point oracle's exact eps off by 1 %: the "perfect model" is no longer perfect
    class PointSet(cls):
        def eps_model(self, schedule):
            model = super().eps_model(schedule)
            return lambda x, t: 1.01 * model(x, t)
    return PointSet


def _frechet_mean_only(f):
    # the Fréchet distance without its covariance terms: blind to a variance loss
    def frechet_distance(mu1, sigma1, mu2, sigma2, **kw):
        return f(mu1, sigma2, mu2, sigma2, **kw)
    return frechet_distance


def _paired_gap_se_small(f):
    # the paired standard error ten times too small: noise would pass for an effect
    def paired_gap(a, b):
        m, s = f(a, b)
        return m, s / 10
    return paired_gap


MUTANTS = [
    Mutant("ch4 ddim_sigma: root of (1 - ab/abp) dropped", NB, GUARD, "samplers.ddim_sigma", _sigma_without_root),
    Mutant("ch4 ddim_step: sign of the direction term", NB, CHECKLIST, "samplers.ddim_step", _step_direction_sign),
    Mutant("ch4 sample_ddim: last step skipped", NB, GUARD, "samplers.sample_ddim", _loop_stops_early),
    Mutant("ch4 uniform_timesteps: indices off by one", NB, GUARD, "schedules.uniform_timesteps", _uniform_off_by_one),
    Mutant("ch4 ddpm_step: noise sign and scale", NB, CHECKLIST, "samplers.ddpm_step", _ddpm_noise_sign),
    Mutant("ch4 eps_from_x0: root of 1 - ab dropped", NB, MC_STEP, "forward.eps_from_x0", _eps_from_x0_no_root),
    Mutant("ch4 gaussian_expectation: E[eps^2] = 2", NB, SYMPY, "derive.algebra.gaussian_expectation", _expectation_second_moment),
    # checks added when the chapter was rebuilt on the code as its author wrote it (issue J.2)
    Mutant("ch4 uniform_timesteps: trailing grid from T - 1", NB, CHECKLIST, "schedules.uniform_timesteps", _uniform_trailing,
           "the checklist's 'starts at T-1' column: only_start_980 would pass every check"),
    Mutant("ch4 PointSet: eps 1 % too large", NB, DRIFT, "oracles.PointSet", _point_eps_scaled,
           "the single-point chains leave the target"),
    Mutant("ch4 frechet_distance: covariance terms dropped", NB, FRECHET, "fid.frechet_distance", _frechet_mean_only,
           "which slip moves the output law: no slip would"),
    Mutant("ch4 ddim_sigma: sqrt(eta) in place of eta", NB, FRECHET, "samplers.ddim_sigma", _sigma_sqrt_eta,
           "two-sided: with sigma_unsquared fixed the note no longer lands on the (mis-)computed correct distance"),
    Mutant("ch4 sample_ddim: returns x at index 0 (the note's last_step)", NB, SAMPLES, "samplers.sample_ddim",
           _returns_before_last_step,
           "the correct sampler would miss the five points"),
    Mutant("ch4 paired_gap: standard error 10x too small", NB_APP, CIFAR, "course.paired_gap", _paired_gap_se_small,
           "two-sided: every other slip's detail change would leave +-4 SE"),
]
