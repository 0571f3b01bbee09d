r"""Interactive explorers for the chapters: eta and steps of DDIM, noise schedules, samplers.

Each explorer is a class whose state lives in its ipywidgets controls (sliders, dropdowns),
created by the constructor, so a test can set ``explorer.eta.value = 0.5`` and check the
result of the pure method :meth:`compute` without a browser. The user interface is built only
by :meth:`show` (or by displaying the explorer in a notebook): the controls, a line of text
(the NFE used, or why a combination of settings cannot run) and the figure, drawn with
matplotlib's Agg renderer into an ``ipywidgets.Image``. Every slider is throttled
(``continuous_update=False``) and one change of a control triggers exactly one recomputation.

No reachable control value raises: slider ranges only hold valid values (steps 1..T,
:math:`\eta \in [0, 1]`, ...). A combination that has no meaning (quadratic spacing with more
steps than distinct indices) makes :meth:`compute` return a result whose ``error`` holds the
message, which the interface shows in place of the figure.

=======================  =====================================================  ========
class                    explores                                               chapter
=======================  =====================================================  ========
:class:`EtaExplorer`     DDIM's :math:`\eta` and the number of steps, from one  3
                         fixed :math:`x_T`; the trajectory of :math:`\hat x_0`
:class:`ScheduleExplorer` linear / cosine / respaced :math:`\bar\alpha_t`, SNR,  1, 3, 6
                         and :math:`q(x_t \mid x_0)` of an image
:class:`SamplerExplorer` every sampler of ``diffnotes.generate.SAMPLERS`` at    5, 9
                         equal NFE, from one fixed :math:`x_T`
:class:`GuidanceExplorer` class and classifier-free guidance weight            8
:class:`FlowExplorer`    Euler / Heun on a flow-matching ODE: steps, time grid, 10
                         against the exact end of the flow (2-D oracles)
=======================  =====================================================  ========

Models are the discrete ``model(x_t, t) -> eps_hat`` of every sampler (an oracle's
``eps_model(schedule)``, or ``diffnotes.pretrained()``); data are images ``[B, C, H, W]`` in
:math:`[-1, 1]` (``C`` = 1 or 3) or points ``[B, D]`` (drawn as a scatter of the first two
coordinates).
The package: :mod:`~diffnotes.widgets.base` (the shared machinery), one module per explorer
(:mod:`~diffnotes.widgets.eta`, :mod:`~diffnotes.widgets.schedule`, :mod:`~diffnotes.widgets.sampler`,
:mod:`~diffnotes.widgets.guidance`, :mod:`~diffnotes.widgets.flow`).
"""
from .._util import CountingModel
from .base import STEP_CHOICES, image_grid, step_choices, synthetic_image
from .eta import EtaExplorer
from .flow import FLOW_STEPS, GRIDS, FlowExplorer, flow_grid
from .guidance import W_CHOICES, GuidanceExplorer
from .sampler import SamplerExplorer
from .schedule import ScheduleExplorer

__all__ = [
    "STEP_CHOICES",
    "W_CHOICES",
    "step_choices",
    "image_grid",
    "synthetic_image",
    "CountingModel",
    "EtaExplorer",
    "ScheduleExplorer",
    "SamplerExplorer",
    "GuidanceExplorer",
    "FlowExplorer",
    "FLOW_STEPS",
    "GRIDS",
    "flow_grid",
]
