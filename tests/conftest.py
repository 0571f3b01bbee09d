"""Shared pytest set-up.

Tests use small tensors, for which torch's intra-op thread pool costs more than it gives
(on a 2-core CI machine two threads fight over each tiny op), so run them single-threaded.
"""
import torch

torch.set_num_threads(1)

# Property tests draw the same examples on every run (no flaky CI); run with
# `--hypothesis-profile=explore` to search with fresh random examples.
from hypothesis import settings  # noqa: E402

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")
