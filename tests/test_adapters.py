"""The one VP SDE for a discrete schedule (diffnotes.adapters.vp_sde_for)."""
import math

import pytest
import torch

from diffnotes import adapters
from diffnotes.schedules import cosine_schedule, linear_schedule, respace, uniform_timesteps


@pytest.mark.parametrize("schedule", [linear_schedule(), cosine_schedule(), linear_schedule(1000, 1e-3, 0.2)],
                         ids=["linear", "cosine", "linear-steep"])
def test_vp_sde_matches_the_schedule_at_both_ends(schedule):
    # beta(0) = T beta_1 and m(1)^2 = alpha_bar_T: the prior N(0, I) is exactly as far from p_T as DDPM's
    sde = adapters.vp_sde_for(schedule)
    assert sde.beta_min == pytest.approx(schedule.T * float(schedule.betas[0]), rel=1e-12)
    m1, _ = sde.marginal_coefs(1.0)
    assert float(m1 ** 2) == pytest.approx(float(schedule.alpha_bar[-1]), rel=1e-9)


def test_matched_sde_is_closer_to_the_schedule_than_the_first_order_limit():
    # log alpha_bar at t = i/T: the matched beta_max misses by about 0.012, Song et al.'s T*beta_T = 20 by 0.068
    s = linear_schedule()
    t = (torch.arange(s.T, dtype=torch.float64) + 1) / s.T
    log_abar = torch.log(s.alpha_bar)

    def worst(beta_max):
        return float((-(0.1 * t + 0.5 * (beta_max - 0.1) * t ** 2) - log_abar).abs().max())

    sde = adapters.vp_sde_for(s)
    assert sde.beta_min == pytest.approx(0.1) and sde.beta_max == pytest.approx(20.1354, abs=1e-3)
    assert worst(sde.beta_max) < 0.013 < 0.06 < worst(20.0)
    assert sde.beta_max == pytest.approx(-2 * math.log(float(s.alpha_bar[-1])) - 0.1, rel=1e-12)


def test_only_linear_schedules_are_linear_and_respaced_ones_are_refused():
    assert adapters.is_linear(linear_schedule()) and not adapters.is_linear(cosine_schedule())
    with pytest.raises(ValueError, match="respaced"):
        adapters.vp_sde_for(respace(linear_schedule(), uniform_timesteps(1000, 10)))
    with pytest.raises(ValueError, match="Schedule"):
        adapters.vp_sde_for("linear")
