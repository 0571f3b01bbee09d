r"""Training objectives: L_simple, denoising score matching, the hybrid loss, the weighting and sampling of t.

:func:`l_simple` is the simplified DDPM objective (Ho et al. 2020, eq. 14), :func:`dsm_loss` the
denoising score matching loss (chapter 5), and :func:`hybrid_loss` improved DDPM's
:math:`L_{\mathrm{simple}} + \lambda L_{\mathrm{vlb}}` (Nichol & Dhariwal 2021), whose
:math:`L_{\mathrm{vlb}}` part is a term of the variational bound from :mod:`diffnotes.likelihood`
(the bound itself, its terms and the discretised decoder live there). Importance sampling of ``t``
(:func:`importance_probs`, :func:`importance_weights`, :class:`LossAwareSampler`) makes the
per-step losses an unbiased estimate of the uniform mean.

Recipe options of ``train`` (issue M): per-step loss weights (:func:`min_snr_weight`,
:func:`edm_weight`, :func:`timestep_loss_weights`, :func:`weighted_l_simple`) and EDM's log-normal
distribution of the noise level mapped onto a discrete schedule (:func:`sample_t_log_normal`).

Index convention (see CONTRIBUTING.md): code index ``t = 0 .. T-1`` is the paper's step ``1 .. T``.

Chapters 2 (L_simple), 5 (denoising score matching) and 6 (improved DDPM: the hybrid loss,
importance sampling of t).
"""
from __future__ import annotations

import torch

from . import likelihood
from ._checks import show_value, check_batch, check_choice, check_finite, check_int, check_range, check_same_shape, check_t
from ._util import append_dims

__all__ = [
    "l_simple",
    "dsm_loss",
    "hybrid_loss",
    "importance_probs",
    "importance_weights",
    "LossAwareSampler",
    "min_snr_weight",
    "edm_weight",
    "timestep_loss_weights",
    "weighted_l_simple",
    "schedule_log_snr",
    "nearest_log_snr_index",
    "sample_t_log_normal",
]

_REDUCTIONS = ("mean", "none")


# --------------------------------------------------------------------------- helpers
def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice("reduction", reduction, _REDUCTIONS)
    return per_sample.mean() if reduction == "mean" else per_sample


# --------------------------------------------------------------------------- L_simple
def l_simple(eps_hat: torch.Tensor, eps: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""The simplified DDPM objective: mean squared error between true and predicted noise.

    .. math:: L_{\mathrm{simple}} = \mathbb{E}_{t, x_0, \epsilon}\,
              \lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2

    Ho et al. 2020, eq. 14. The squared error is averaged over all non-batch dimensions, which
    only rescales the paper's sum by the constant :math:`1/D`. Chapter 2.

    Parameters
    ----------
    eps_hat, eps : torch.Tensor, shape [B, ...]
        Predicted and true noise.
    reduction : {"mean", "none"}
        ``"none"`` returns the per-sample losses, shape ``[B]``; ``"mean"`` their batch mean.
    """
    check_batch("eps_hat", eps_hat)
    check_batch("eps", eps)
    check_same_shape("eps", eps, "eps_hat", eps_hat)
    per_sample = ((eps - eps_hat) ** 2).flatten(1).mean(1)
    return _reduce(per_sample, reduction)


# --------------------------------------------------------------------------- score matching
def dsm_loss(score_hat, x_t, x_0, alpha, sigma, *, weighting: str = "sigma2", reduction: str = "mean"):
    r"""Denoising score matching: regress the score of the noising kernel :math:`q(x_t \mid x_0)`.

    .. math::
        \ell = \lambda(\sigma)\,\Big\lVert s_\theta(x_t) - \nabla_{x_t}\log q(x_t\mid x_0)\Big\rVert^2,
        \qquad \nabla_{x_t}\log q(x_t\mid x_0) = -\frac{x_t - \alpha x_0}{\sigma^2},
        \qquad \lambda(\sigma) = \sigma^2

    Vincent 2011 (DSM); Song & Ermon 2019, eq. 2 and sec. 4.2 (the weighting
    :math:`\lambda(\sigma)=\sigma^2`). Here :math:`x_t = \alpha x_0 + \sigma\epsilon` with
    :math:`\alpha = \sqrt{\bar\alpha_t}, \sigma = \sqrt{1-\bar\alpha_t}` for DDPM and
    :math:`\alpha = 1` for a VE process. The squared norm is averaged over the non-batch
    dimensions and the paper's factor 1/2 is dropped, so that with the weighting
    :math:`\sigma^2` and :math:`s_\theta = -\hat\epsilon/\sigma` this loss **equals**
    :func:`l_simple` of :math:`\hat\epsilon` exactly (the target is :math:`-\epsilon/\sigma`);
    unweighted it is :math:`L_{\mathrm{simple}}/\sigma^2`. Chapter 5.

    Parameters
    ----------
    score_hat, x_t, x_0 : torch.Tensor, shape [B, ...]
    alpha, sigma : float or tensor [B]
        Mean coefficient (>= 0) and noise standard deviation (> 0) of :math:`q(x_t\mid x_0)`.
    weighting : {"sigma2", "none"}
        :math:`\lambda(\sigma) = \sigma^2` or 1.
    reduction : {"mean", "none"}
    """
    check_batch("score_hat", score_hat)
    check_same_shape("x_t", x_t, "score_hat", score_hat)
    check_same_shape("x_0", x_0, "score_hat", score_hat)
    check_choice("weighting", weighting, ("sigma2", "none"))
    check_range("alpha", alpha, 0.0, None)
    check_range("sigma", sigma, 0.0, None, low_open=True)
    a = append_dims(alpha, x_t)
    s = append_dims(sigma, x_t)
    target = -(x_t - a * x_0) / s**2
    err = (score_hat - target) ** 2
    if weighting == "sigma2":
        err = err * s**2
    per_sample = err.flatten(1).mean(1)
    return _reduce(per_sample, reduction)


# --------------------------------------------------------------------------- improved DDPM
def hybrid_loss(eps_hat, v, eps, x_0, x_t, t, schedule, lambda_vlb: float = 0.001) -> dict:
    r"""The improved-DDPM hybrid objective :math:`L_{\mathrm{simple}} + \lambda L_{\mathrm{vlb}}`.

    .. math::
        L_{\mathrm{hybrid}} = L_{\mathrm{simple}} + \lambda\,L_{\mathrm{vlb}},\qquad
        L_{\mathrm{vlb}} \approx T\cdot L^{(t)}\big(\mathrm{sg}[\mu_\theta],\ \Sigma_\theta\big),
        \qquad \lambda = 0.001

    Nichol & Dhariwal 2021, sec. 3.1 (eq. 16). :math:`L^{(t)}` is :func:`diffnotes.likelihood.vlb_term` in bits/dim
    for the model with mean :math:`\mu_\theta` from ``eps_hat`` (Ho et al. 2020, eq. 11) and
    log-variance :func:`diffnotes.likelihood.learned_log_variance` of ``v``. A stop-gradient (``detach``) on
    ``eps_hat`` inside that term makes :math:`L_{\mathrm{vlb}}` train only the variance, while
    :math:`L_{\mathrm{simple}}` (:func:`l_simple`, per sample) trains the mean. With ``t``
    uniform, :math:`T\,L^{(t)}` is an unbiased estimate of :math:`\sum_t L^{(t)}`; the constant
    :math:`L_T` is left out. For ``T = 1000`` and :math:`\lambda = 0.001` this is the reference
    code's ``mse + vb``. Chapter 6.

    Parameters
    ----------
    eps_hat, v : torch.Tensor, shape [B, ...]
        The network's two outputs: predicted noise and the variance interpolation ``v`` (any finite
        real; [-1, 1] spans :math:`[\tilde\beta_t, \beta_t]`, see :func:`diffnotes.likelihood.learned_log_variance`).
    eps, x_0, x_t : torch.Tensor, shape [B, ...]
        True noise, 8-bit data in [-1, 1] and :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon`.
    t : LongTensor [B]
        Code indices into ``schedule``.
    schedule : Schedule
    lambda_vlb : float
        :math:`\lambda \ge 0`.

    Returns
    -------
    dict of [B] tensors
        ``"loss"`` (multiply by importance weights, then average), ``"l_simple"``, ``"l_vlb"``
        (:math:`T L^{(t)}`, bits/dim).
    """
    check_batch("eps_hat", eps_hat)
    for name, a in (("v", v), ("eps", eps), ("x_0", x_0), ("x_t", x_t)):
        check_same_shape(name, a, "eps_hat", eps_hat)
    check_range("lambda_vlb", lambda_vlb, 0.0, None)
    t = check_t(t, x_t, schedule.T)
    c = schedule.at(t, like=x_t)
    simple = l_simple(eps_hat, eps, reduction="none")
    log_beta, log_beta_tilde = likelihood.fixed_log_variances(schedule, t, x_t)
    logvar = likelihood.learned_log_variance(v, log_beta.exp(), log_beta_tilde.exp())
    mean = likelihood.model_mean_from_eps(x_t, eps_hat.detach(), c)  # stop-gradient: L_vlb trains only the variance
    l_vlb = schedule.T * likelihood.vlb_term(x_0, x_t, t, model_mean=mean, model_log_variance=logvar,
                                             schedule=schedule, unit="bpd")
    return {"loss": simple + lambda_vlb * l_vlb, "l_simple": simple, "l_vlb": l_vlb}


# --------------------------------------------------------------------------- importance sampling
def importance_probs(history_sq: torch.Tensor, *, uniform_prob: float = 0.0) -> torch.Tensor:
    r"""Sampling probabilities of the timesteps from a history of squared losses.

    .. math:: p_t \propto \sqrt{\mathbb{E}[L_t^2]}, \qquad \sum_t p_t = 1

    Nichol & Dhariwal 2021, eq. 18; the expectation is the mean over the stored history.
    With ``uniform_prob = u > 0`` the result is :math:`(1-u)\,p + u/T` (their code uses
    :math:`u = 10^{-3}` so that no step gets probability 0). Chapter 6.

    Parameters
    ----------
    history_sq : torch.Tensor, shape [T, K]
        The last ``K`` values of :math:`L_t^2` for each of the ``T`` steps.

    Returns
    -------
    torch.Tensor, shape [T], float64
    """
    h = torch.as_tensor(history_sq, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ValueError(f"history_sq must have shape [T, K] with T, K >= 1, got {tuple(h.shape)}")
    check_range("history_sq", h, 0.0, None)
    check_range("uniform_prob", uniform_prob, 0.0, 1.0)
    root_ms = h.mean(1).sqrt()
    total = root_ms.sum()
    if uniform_prob == 0.0 and bool((root_ms == 0).any()):
        raise ValueError(
            "every step needs a nonzero loss history for p_t > 0 (a step with p_t = 0 is never sampled, "
            "which biases the estimate); pass uniform_prob > 0"
        )
    p = root_ms / total if float(total) > 0 else torch.full_like(root_ms, 1.0 / h.shape[0])
    return (1.0 - uniform_prob) * p + uniform_prob / h.shape[0]


def importance_weights(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""Weights that make a loss at importance-sampled steps an unbiased estimate of the uniform mean.

    .. math:: w_t = \frac{1}{T\,p_t}, \qquad \mathbb{E}_{t\sim p}[w_t L_t] = \frac1T\sum_t L_t

    Nichol & Dhariwal 2021, sec. 3.3 (:math:`L_{\mathrm{vlb}} = E_{t\sim p}[L_t/p_t]`, here
    divided by :math:`T` so that uniform sampling has weight 1). Returns float64, shape of ``t``.
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.ndim != 1:
        raise ValueError(f"p must be a 1-D tensor of probabilities, got shape {tuple(p.shape)}")
    check_range("p", p, 0.0, 1.0)
    t = torch.as_tensor(t).cpu()
    if t.dtype.is_floating_point or bool((t < 0).any()) or bool((t >= p.numel()).any()):
        raise ValueError(f"t must hold integer indices in [0, {p.numel() - 1}], got {show_value(t)}")
    pt = p[t.long()]
    if bool((pt == 0).any()):
        raise ValueError("p_t must be > 0 at every sampled step")
    return 1.0 / (p.numel() * pt)


class LossAwareSampler:
    r"""Importance sampling of the timestep from recent losses (Nichol & Dhariwal 2021, sec. 3.3).

    Keeps the last ``history`` values of :math:`L_t^2` for each step. Until every step has a full
    history, :meth:`sample_t` is uniform with weight 1 (warm-up); afterwards it draws
    :math:`t \sim p_t \propto \sqrt{E[L_t^2]}` (:func:`importance_probs`) and returns the weights
    :math:`1/(T p_t)` (:func:`importance_weights`), so that ``(weights * loss).mean()`` is an
    unbiased estimate of the uniformly weighted loss. Chapter 6.

    Usage::

        t, w = sampler.sample_t(B, generator=g)
        terms = hybrid_loss(...)               # or any per-sample loss
        (w * terms["loss"]).mean().backward()
        sampler.update(t, terms["l_vlb"])      # the paper tracks the L_vlb terms
    """

    def __init__(self, T: int, history: int = 10, uniform_prob: float = 0.0):
        self.T = check_int("T", T, 1)
        self.history = check_int("history", history, 1)
        check_range("uniform_prob", uniform_prob, 0.0, 1.0)
        self.uniform_prob = float(uniform_prob)
        self.history_sq = torch.zeros(self.T, self.history, dtype=torch.float64)
        self.counts = torch.zeros(self.T, dtype=torch.long)

    @property
    def warmed_up(self) -> bool:
        """Whether every step has a full history (before that, sampling is uniform)."""
        return bool((self.counts >= self.history).all())

    def update(self, t, losses) -> None:
        """Record the per-sample losses ``losses`` [B] observed at steps ``t`` [B] (oldest dropped)."""
        t = torch.as_tensor(t).detach().cpu().reshape(-1)
        losses = torch.as_tensor(losses).detach().cpu().to(torch.float64).reshape(-1)
        if t.numel() != losses.numel():
            raise ValueError(f"t and losses must have the same length, got {t.numel()} and {losses.numel()}")
        if t.dtype.is_floating_point or bool((t < 0).any()) or bool((t >= self.T).any()):
            raise ValueError(f"t must hold integer indices in [0, {self.T - 1}], got {show_value(t)}")
        check_finite("losses", losses)
        for ti, li in zip(t.tolist(), losses.tolist()):
            n = int(self.counts[ti])
            if n < self.history:
                self.history_sq[ti, n] = li * li
            else:
                self.history_sq[ti] = torch.roll(self.history_sq[ti], -1)
                self.history_sq[ti, -1] = li * li
            self.counts[ti] = n + 1

    def probs(self) -> torch.Tensor:
        """Current :math:`p_t`, shape [T], float64: uniform during warm-up."""
        if not self.warmed_up:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        return importance_probs(self.history_sq, uniform_prob=self.uniform_prob)

    def sample_t(self, batch: int, generator=None, *, device=None, dtype=None):
        """Draw ``batch`` timesteps; returns ``(t, weights)`` (LongTensor [B], tensor [B]).

        ``weights`` have ``dtype`` (default: torch's default dtype) and, like ``t``, live on
        ``device`` (default: the generator's device, else CPU).
        """
        batch = check_int("batch", batch, 1)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        device = gen_device if device is None else device
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not self.warmed_up:
            t = torch.randint(self.T, (batch,), generator=generator, device=gen_device)
            w = torch.ones(batch, dtype=torch.float64)
        else:
            p = self.probs()
            t = torch.multinomial(p.to(gen_device), batch, replacement=True, generator=generator)
            w = importance_weights(p, t)
        return t.to(device), w.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------- recipe: loss weights, t sampling
_WEIGHTINGS = ("l_simple", "min_snr", "edm")


def min_snr_weight(snr, gamma: float = 5.0) -> torch.Tensor:
    r"""Min-SNR-:math:`\gamma` weight of the noise-prediction loss at signal-to-noise ratio ``snr``.

    .. math:: w_t = \frac{\min(\mathrm{SNR}_t,\ \gamma)}{\mathrm{SNR}_t}
              = \min\!\left(1,\ \frac{\gamma}{\mathrm{SNR}_t}\right)

    Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy":
    the x_0-loss weighted by :math:`\min(\mathrm{SNR}_t, \gamma)`, written for an
    :math:`\epsilon`-prediction network (:math:`\lVert x_0-\hat x_0\rVert^2 =
    \lVert\epsilon-\hat\epsilon\rVert^2/\mathrm{SNR}_t`). The weight is 1 at every noisy step
    (:math:`\mathrm{SNR}_t \le \gamma`, where it is L_simple) and :math:`\gamma/\mathrm{SNR}_t < 1`
    at the nearly clean ones, whose easy, conflicting gradients it turns down. They use
    :math:`\gamma = 5`. Returns float64, the shape of ``snr``.
    """
    snr = torch.as_tensor(snr, dtype=torch.float64)
    check_range("snr", snr, 0.0, None, low_open=True)
    check_range("gamma", gamma, 0.0, None, low_open=True)
    return torch.clamp(snr, max=float(gamma)) / snr  # min(SNR, gamma) / SNR: exactly 1 where SNR <= gamma


def edm_weight(snr, sigma_data: float = 0.5) -> torch.Tensor:
    r"""EDM's loss weight (Karras et al. 2022) carried over to an :math:`\epsilon`-prediction network.

    .. math:: w_t = \lambda(\sigma_t)\,\sigma_t^2 = \frac{\sigma_t^2 + \sigma_\text{data}^2}{\sigma_\text{data}^2}
              = 1 + \frac{1}{\sigma_\text{data}^2\,\mathrm{SNR}_t},
              \qquad \sigma_t^2 = \frac{1-\bar\alpha_t}{\bar\alpha_t} = \frac{1}{\mathrm{SNR}_t}

    Derivation. EDM trains a denoiser with :math:`\lambda(\sigma)\lVert D(x;\sigma)-x_0\rVert^2`,
    :math:`\lambda(\sigma) = (\sigma^2+\sigma_\text{data}^2)/(\sigma\,\sigma_\text{data})^2` (its
    Table 1), on :math:`x = x_0 + \sigma\epsilon`. A VP sample is that :math:`x` scaled:
    :math:`x_t = \sqrt{\bar\alpha_t}\,x`, and the denoiser an :math:`\epsilon`-network implies is
    :math:`D = x_t/\sqrt{\bar\alpha_t} - \sigma_t\hat\epsilon`, so
    :math:`D - x_0 = -\sigma_t(\hat\epsilon-\epsilon)` and EDM's loss is :math:`w_t\lVert
    \hat\epsilon-\epsilon\rVert^2` with the :math:`w_t` above (Kingma & Gao 2023 write EDM's weighting
    the same way, as a function of log-SNR).
    This is the weighting only: EDM's network has its preconditioning (:math:`c_\text{skip},
    c_\text{out}`), which keeps the error of :math:`D` bounded at high noise; an
    :math:`\epsilon`-network's weight grows like :math:`1/\mathrm{SNR}_t` (about :math:`10^5` at the
    last step of the linear schedule), so use it with EDM's log-normal noise levels
    (:func:`sample_t_log_normal`), which almost never draw those steps. :math:`\sigma_\text{data}
    = 0.5` for images in [-1, 1]. Returns float64, the shape of ``snr``.
    """
    snr = torch.as_tensor(snr, dtype=torch.float64)
    check_range("snr", snr, 0.0, None, low_open=True)
    check_range("sigma_data", sigma_data, 0.0, None, low_open=True)
    return 1.0 + 1.0 / (float(sigma_data) ** 2 * snr)


def timestep_loss_weights(schedule, weighting: str = "l_simple", *, gamma: float = 5.0,
                          sigma_data: float = 0.5) -> torch.Tensor:
    r"""The loss weight :math:`w_t` of every step index ``t = 0..T-1`` of ``schedule``, float64 [T].

    ``"l_simple"``: :math:`w_t = 1` (Ho et al. 2020, eq. 14); ``"min_snr"``: :func:`min_snr_weight`
    with ``gamma``; ``"edm"``: :func:`edm_weight` with ``sigma_data``. The training loss of a batch is
    :func:`weighted_l_simple` with ``weights[t]``.
    """
    check_choice("weighting", weighting, _WEIGHTINGS)
    check_range("gamma", gamma, 0.0, None, low_open=True)
    check_range("sigma_data", sigma_data, 0.0, None, low_open=True)
    snr = schedule.snr.to(torch.float64)
    if weighting == "min_snr":
        return min_snr_weight(snr, gamma)
    if weighting == "edm":
        return edm_weight(snr, sigma_data)
    return torch.ones_like(snr)


def weighted_l_simple(eps_hat: torch.Tensor, eps: torch.Tensor, weight) -> torch.Tensor:
    r"""L_simple with a weight per sample: :math:`\frac1B\sum_b w_b\,\frac1D\lVert\epsilon_b-\hat\epsilon_b\rVert^2`.

    ``weight`` has shape ``[B]`` (e.g. ``timestep_loss_weights(...)[t]``); with every weight 1 it
    is :func:`l_simple` (Ho et al. 2020, eq. 14); Hang et al. 2023 and Karras et al. 2022 weight it
    per noise level. The loss is computed in ``eps``'s dtype.
    """
    per_sample = l_simple(eps_hat, eps, reduction="none")
    w = torch.as_tensor(weight).to(device=per_sample.device, dtype=per_sample.dtype)
    if w.shape != per_sample.shape:
        raise ValueError(f"weight must have shape [B] = {tuple(per_sample.shape)}, got {tuple(w.shape)}")
    check_range("weight", w, 0.0, None)
    return (w * per_sample).mean()


def schedule_log_snr(schedule) -> torch.Tensor:
    r"""Log signal-to-noise ratio of every step, :math:`\lambda_t = \log\bar\alpha_t - \log(1-\bar\alpha_t)`,
    float64 [T], strictly decreasing in ``t`` (Kingma et al. 2021, sec. 3)."""
    ab = schedule.alpha_bar.to(torch.float64)
    return torch.log(ab) - torch.log1p(-ab)


def nearest_log_snr_index(schedule, log_snr) -> torch.Tensor:
    r"""The step index whose :math:`\lambda_t` (:func:`schedule_log_snr`) is nearest to each value of ``log_snr``.

    .. math:: t(\lambda) = \arg\min_{t\in\{0..T-1\}} \lvert\lambda_t - \lambda\rvert

    Values beyond the schedule's range go to its ends: above :math:`\lambda_0` to ``t = 0`` (the
    cleanest step), below :math:`\lambda_{T-1}` to ``t = T-1``. A value exactly half-way between two
    steps goes to the noisier one. Equivalently, index ``t`` receives the interval between the
    midpoints :math:`(\lambda_{t+1}+\lambda_t)/2` and :math:`(\lambda_t+\lambda_{t-1})/2`.
    This puts a continuous noise level (EDM's :math:`\sigma = e^{-\lambda/2}`, Karras et al. 2022) on a
    discrete schedule trained at its own steps. Returns a LongTensor of the shape and device of ``log_snr``.
    """
    x = torch.as_tensor(log_snr, dtype=torch.float64)
    check_finite("log_snr", x)
    lam = schedule_log_snr(schedule).to(x.device)
    T = lam.numel()
    if T == 1:
        return torch.zeros(x.shape, dtype=torch.long, device=x.device)
    asc = lam.flip(0).contiguous()  # increasing: asc[j] is lambda at index T-1-j
    j = torch.searchsorted(asc, x.contiguous()).clamp(1, T - 1)
    lo, hi = asc[j - 1], asc[j]
    pick = torch.where(x - lo <= hi - x, j - 1, j)
    return (T - 1) - pick


def sample_t_log_normal(schedule, n: int, *, mean: float = 2.4, std: float = 2.4, generator=None,
                        device=None) -> torch.Tensor:
    r"""Training step indices with a normally distributed log-SNR, mapped to the schedule's nearest step.

    .. math:: \lambda \sim N(P_\text{mean}, P_\text{std}^2), \qquad t = \arg\min_t \lvert\lambda_t-\lambda\rvert

    (the mapping is :func:`nearest_log_snr_index`). EDM (Karras et al. 2022, sec. 5 and Table 1)
    draws :math:`\ln\sigma \sim N(-1.2, 1.2^2)`; with :math:`\sigma^2 = 1/\mathrm{SNR}`,
    :math:`\lambda = -2\ln\sigma \sim N(2.4, 2.4^2)`, the defaults here. Index ``t`` is drawn with
    the probability :math:`\Phi(b_t) - \Phi(a_t)` of its interval :math:`[a_t, b_t)` between
    midpoints (standardised), so the mass beyond the schedule's range lands on its end steps. The
    draws (float64) come from ``generator``; the result lives on ``device`` (default: the
    generator's device, else the CPU).
    """
    n = check_int("n", n, 0)
    check_range("mean", mean, None, None)
    check_range("std", std, 0.0, None, low_open=True)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    z = torch.randn(n, generator=generator, device=gen_device, dtype=torch.float64)
    t = nearest_log_snr_index(schedule, float(mean) + float(std) * z)
    return t.to(device if device is not None else gen_device)
