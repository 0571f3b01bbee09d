r"""Schematic diagrams: the pictures a lecturer draws on the board, drawn by tested functions.

Each public function returns a :class:`Schematic`, a pair ``(fig, alt)`` of a matplotlib
``Figure`` and its alternative text, so that a chapter shows it with

    course.show_figure(*schematics.ddim_graph(T=6, tau=(6, 4, 2, 0)))

``alt`` is written from the arguments (how many nodes, which steps are skipped, how far each
solver lands from the exact end point), so it stays true when the arguments change. The numbers a
figure is drawn from are in ``Schematic.data``, and every drawn node and arrow carries a ``gid``
(``"node"``, ``"forward"``, ``"reverse"``, ...), so tests can count what is drawn.

====================================  ==========================================================  ========
function                              what it teaches                                             lessons
====================================  ==========================================================  ========
:func:`forward_reverse_chain`         the fixed forward chain :math:`q` and the learned reverse    1, 2
                                      chain :math:`p_\theta` on the same nodes
:func:`ddim_graph`                    DDPM's Markov graph, DDIM's non-Markovian graph (every       3
                                      :math:`x_{t-1}` also hangs on :math:`x_0`), sampling that
                                      skips steps along a subsequence :math:`\tau`
:func:`ode_step_comparison`           one Euler step against one Heun step on a curved             5, 9
                                      probability-flow trajectory, with its exact solution
:func:`guidance_field`                unconditional, class and classifier-free-guided score        8
                                      fields on a labelled Gaussian mixture
:func:`frechet_picture`               what FID measures, in 2-D: two point clouds, their fitted    7
                                      Gaussians, and the distance split into a mean term and a
                                      covariance term
====================================  ==========================================================  ========

The figures are built on ``matplotlib.figure.Figure`` directly (not pyplot), so making one has no
global side effect and works headless.

Layout: :mod:`diffnotes.schematics.base` holds :class:`Schematic`, the colours and the drawing
primitives (axes, nodes, arrows); :mod:`diffnotes.schematics.graphs` the node-and-arrow diagrams
(lessons 1-3); :mod:`diffnotes.schematics.planes` the pictures on a plane (lessons 5, 7, 8, 9).
"""
from __future__ import annotations

from .base import Schematic
from .graphs import ddim_graph, forward_reverse_chain
from .planes import frechet_picture, guidance_field, ode_step_comparison

__all__ = ["Schematic", "forward_reverse_chain", "ddim_graph", "ode_step_comparison", "guidance_field",
           "frechet_picture"]
