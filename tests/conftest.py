"""Test configuration: one torch thread, so that tiny networks don't thrash the two cores of CI."""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

# the test modules import their shared data and budgets from tests/_shared.py
sys.path.insert(0, os.path.dirname(__file__))
