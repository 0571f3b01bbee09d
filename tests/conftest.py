"""Shared pytest set-up.

Tests use small tensors, for which torch's intra-op thread pool costs more than it gives
(on a 2-core CI machine two threads fight over each tiny op), so run them single-threaded.
"""
import torch

torch.set_num_threads(1)
