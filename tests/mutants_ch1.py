"""Mutants for chapter 1 (the forward process): each breaks one function the chapter checks."""
import torch

from mutation_harness import Mutant

NB = "01_forward_process"
SETUP = "cf11064d"
# the explicit-step algebra, the two-step check and the Monte-Carlo table live in the chapter's appendix
NB_APP = "appendix/01_forward_process_appendix"
SETUP_APP = "a1a00001"


def _q_step_noise_sign(f):
    def q_step(x_prev, beta, *, eps=None, generator=None):
        out = f(x_prev, beta, eps=eps, generator=generator)
        # flip the sign of the shrink factor: -sqrt(1-beta) x_prev + sqrt(beta) eps
        b = torch.as_tensor(beta, dtype=x_prev.dtype)
        return out - 2 * torch.sqrt(1 - b) * x_prev
    return q_step


def _q_sample_noise_without_sqrt(f):
    def q_sample(x_0, alpha_bar_t, *, eps=None, generator=None):
        # sqrt(ab) x_0 + (1 - ab) eps: the square root of the noise variance forgotten
        if eps is None:
            eps = torch.randn(x_0.shape, generator=generator, dtype=x_0.dtype)
        ab = torch.as_tensor(alpha_bar_t, dtype=x_0.dtype)
        ab = ab.reshape(ab.shape + (1,) * (x_0.ndim - ab.ndim))
        return torch.sqrt(ab) * x_0 + (1 - ab) * eps
    return q_sample


def _q_sample_signal_without_sqrt(f):
    def q_sample(x_0, alpha_bar_t, *, eps=None, generator=None):
        ab = torch.as_tensor(alpha_bar_t, dtype=x_0.dtype)
        ab = ab.reshape(ab.shape + (1,) * (x_0.ndim - ab.ndim))
        # ab x_0 instead of sqrt(ab) x_0
        return f(x_0, alpha_bar_t, eps=eps, generator=generator) + (ab - torch.sqrt(ab)) * x_0
    return q_sample


def _alpha_bar_shifted(f):
    def linear_schedule(*args, **kwargs):
        s = f(*args, **kwargs)

        class Shifted(type(s)):
            @property
            def alpha_bar(self):  # alpha_bar[i] = product of the first i alphas: one step behind
                return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(self.alphas, 0)[:-1]])

        return Shifted(s.betas, name=s.name)
    return linear_schedule


def _eps_from_x0_sign(f):
    def eps_from_x0(x_t, x_0, alpha_bar_t):
        return f(x_t, -x_0, alpha_bar_t)  # (x_t + sqrt(ab) x_0) / sqrt(1 - ab)
    return eps_from_x0


def _q_mean_std_variance_as_std(f):
    def q_mean_std(x_0, alpha_bar_t):
        mean, std = f(x_0, alpha_bar_t)
        return mean, std ** 2  # returns the variance where the std belongs
    return q_mean_std


MUTANTS = [
    Mutant("ch1 q_step: sign of sqrt(1-beta) x_{t-1}", NB, (SETUP, "795b5ab8"),
           "forward.q_step", _q_step_noise_sign, "forward.q_step with -sqrt(1-beta) x_prev"),
    Mutant("ch1 q_sample: noise coefficient 1-ab instead of sqrt(1-ab)", NB_APP, (SETUP_APP, "e7d95aca", "d4312ec3"),
           "forward.q_sample", _q_sample_noise_without_sqrt, "forward.q_sample without the noise's square root"),
    Mutant("ch1 q_sample: signal coefficient ab instead of sqrt(ab)", NB_APP, (SETUP_APP, "e7d95aca", "d4312ec3"),
           "forward.q_sample", _q_sample_signal_without_sqrt, "forward.q_sample without the signal's square root"),
    Mutant("ch1 linear_schedule: alpha_bar one step behind", NB, (SETUP, "9980ac2e", "802182a3", "0538e2b5"),
           "schedules.linear_schedule", _alpha_bar_shifted, "Schedule.alpha_bar[i] = prod of alphas[:i]"),
    Mutant("ch1 eps_from_x0: sign of the x_0 term", NB, (SETUP, "9980ac2e", "8a13d336"),
           "forward.eps_from_x0", _eps_from_x0_sign, "forward.eps_from_x0 with +sqrt(ab) x_0"),
    Mutant("ch1 q_mean_std: variance returned as std", NB_APP, (SETUP_APP, "e7d95aca", "e834a5af", "801ed508"),
           "forward.q_mean_std", _q_mean_std_variance_as_std, "forward.q_mean_std returns 1-ab as the std"),
]
