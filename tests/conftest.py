"""Test configuration: one torch thread, so that tiny networks don't thrash the two cores of CI."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
