r"""A velocity network for images: a DDPM U-Net asked for the velocity of the straight path (chapter 10, section 8).

Flow matching (:mod:`diffnotes.flow_matching`) trains a network :math:`v_\theta(x_t, t)` on
:math:`x_t = (1-t)\,x_0 + t\,\epsilon`. The U-Net of the noise model (:mod:`diffnotes.unet`) can be that network
when its input is put where a noise network's input is: :math:`x_t` scaled to unit variance, and the time
embedding of the DDPM step with the same log-SNR. Then the shipped noise model is a good start for training
it (``python -m diffnotes train --objective flow --init-from cifar10-cpu-5``).

* :func:`network_time` -- the DDPM step (real-valued) at the noise level of flow time ``t``;
* :func:`call_velocity_net` -- the network's velocity at ``(x_t, t)``: the one place the input is mapped;
* :class:`VelocityNet` -- a trained velocity network, called as ``model(x, t) -> v``, what
  :func:`diffnotes.checkpoints.load_model` returns for a model trained with ``objective="flow"``.

Sources: Lipman et al. 2023; Liu, Gong & Liu 2023; Karras et al. 2022 (the input scaling :math:`c_{\rm in}`).
"""
from __future__ import annotations

import torch

from ._checks import check_batch, check_range
from ._util import append_dims, carry_trained_attrs

__all__ = ["network_time", "call_velocity_net", "VelocityNet"]

def network_time(t, schedule) -> torch.Tensor:
    r"""The (real-valued) step index of a DDPM ``schedule`` whose noise level is that of flow time ``t``.

    The flow's log-SNR is :math:`\lambda(t) = 2\log\frac{1-t}{t}` (:func:`diffnotes.flow_matching.log_snr`); the schedule's is
    :math:`\lambda_i = \log\frac{\bar\alpha_i}{1-\bar\alpha_i}`, decreasing in the index :math:`i`. The
    result :math:`\tau` solves :math:`\lambda_\tau = \lambda(t)` by linear interpolation between
    neighbouring steps, and is clamped to :math:`[0, T-1]` where :math:`\lambda(t)` lies beyond the
    schedule's range (near ``t = 0`` and ``t = 1``). A U-Net's time embedding takes real indices, so a
    network trained on the schedule is asked about the noise level it knows (the same map as
    :func:`diffnotes.flow_matching.flow_time_from_alpha_bar`, read the other way). Chapter 10.

    Parameters
    ----------
    t : float or Tensor, in [0, 1]
    schedule : diffnotes.schedules.Schedule

    Returns
    -------
    Tensor
        :math:`\tau`, float64, the shape of ``t``.
    """
    check_range("t", t, 0.0, 1.0)
    tt = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
    ab = schedule.alpha_bar.to(torch.float64)
    lam_s = torch.log(ab / (1 - ab))                       # decreasing in the index
    with torch.no_grad():
        lam = 2 * (torch.log1p(-tt) - torch.log(tt))       # +inf at t = 0, -inf at t = 1
    neg = (-lam_s).contiguous()                            # increasing
    x = (-lam).clamp(float(neg[0]), float(neg[-1]))
    hi = torch.searchsorted(neg, x.reshape(-1)).clamp(1, neg.numel() - 1).reshape(x.shape)
    lo = hi - 1
    frac = (x - neg[lo]) / (neg[hi] - neg[lo])
    return lo.to(torch.float64) + frac


def call_velocity_net(net, x_t: torch.Tensor, t, schedule, *args) -> torch.Tensor:
    r"""The velocity a U-Net ``net`` predicts at ``(x_t, t)``, with its input put where a DDPM network's is.

    .. math:: v_\theta(x_t, t) = F_\theta\big(x_t/\sqrt{(1-t)^2 + t^2},\ \tau(t)\big)

    The scaling gives :math:`x_t` unit variance when the data have it, as :math:`\sqrt{\bar\alpha}x_0 +
    \sqrt{1-\bar\alpha}\,\epsilon` has (:func:`diffnotes.flow_matching.ddim_from_flow`), and :math:`\tau` = :func:`network_time` is
    the schedule's step with the same noise level; so a network trained for noise prediction on
    ``schedule`` starts a velocity model from features that fit its inputs (Karras et al. 2022 call the
    scaling :math:`c_{\rm in}`). The output is the velocity itself, :math:`\epsilon - x_0` in expectation,
    trained with the flow-matching loss (:func:`diffnotes.train.train_step`, ``objective="flow"``).
    Chapter 10.

    Parameters
    ----------
    net : callable
        ``net(x, tau, *args)``, e.g. a :class:`diffnotes.unet.UNet`.
    x_t : Tensor [B, ...]
    t : float or Tensor [B], in [0, 1]
    schedule : diffnotes.schedules.Schedule
        The schedule that sets the network's time embedding.
    args
        Passed on to ``net`` (class labels).
    """
    check_batch("x_t", x_t, min_ndim=1)
    B = x_t.shape[0]
    tt = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
    if tt.ndim == 0:
        tt = tt.expand(B)
    if tuple(tt.shape) != (B,):
        raise ValueError(f"t must be a float or a tensor of shape [B] = [{B}], got shape {tuple(tt.shape)}")
    c_in = 1.0 / torch.sqrt((1 - tt) ** 2 + tt**2)
    tau = network_time(tt, schedule)
    x_in = x_t * append_dims(c_in.to(device=x_t.device, dtype=x_t.dtype), x_t)
    return net(x_in, tau.to(device=x_t.device, dtype=torch.float32), *args)


class VelocityNet(torch.nn.Module):
    r"""A U-Net trained with the flow-matching loss, called as a velocity model ``model(x, t) -> v``.

    ``t`` is the flow time in [0, 1] (a float or a tensor ``[B]``); the call is :func:`call_velocity_net`, so
    :func:`diffnotes.flow_matching.sample_euler` and :func:`diffnotes.flow_matching.sample_heun` run on it, and on images the registry's ``flow_euler`` and
    ``flow_heun`` (:data:`diffnotes.generate.SAMPLERS`). It carries the U-Net's ``.config`` and ``.schedule``
    (the schedule only sets the network's time embedding; the model does not sample on it).
    :func:`diffnotes.checkpoints.load_model` returns one for a model trained with ``objective="flow"``.
    Chapter 10.
    """

    def __init__(self, unet: torch.nn.Module, schedule):
        super().__init__()
        self.unet = unet
        carry_trained_attrs(unet, self)
        object.__setattr__(self, "schedule", schedule)

    def forward(self, x, t, *args):
        return call_velocity_net(self.unet, x, t, self.schedule, *args)
