"""Many fits at once: GridSearchCV on joblib's process workers and on a Dask cluster gives the
results of a sequential search, and no worker runs torch on more threads than its share of cores."""

import os

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed, parallel_backend
from sklearn.model_selection import GridSearchCV

from skflow import FlowMatchingDensity

from _shared import FAST, gaussian

GRID = {"path": ["linear", "trig"]}


def search(**kwargs):
    flow = FlowMatchingDensity(random_state=0, **FAST)
    return GridSearchCV(flow, GRID, cv=2, **kwargs).fit(gaussian(200, 0))


@pytest.fixture(scope="module")
def sequential():
    return search(n_jobs=1).cv_results_


def assert_same_results(results, expected):
    # the same computations on one thread each: equal up to rounding (exactly, on 2 cores)
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(results[key], expected[key], rtol=1e-9, err_msg=key)
    assert list(results["params"]) == list(expected["params"])


def test_process_workers_give_the_sequential_results(sequential):
    assert_same_results(search(n_jobs=2).cv_results_, sequential)


def test_joblib_workers_do_not_oversubscribe(monkeypatch):
    """joblib's loky workers cap the threads of OpenMP (hence torch's intra-op pool) at
    cpu_count // n_jobs, so n_jobs workers use at most all cores together."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the cap is joblib's, not this run's
    threads = Parallel(n_jobs=2)(delayed(torch.get_num_threads)() for _ in range(4))
    assert max(threads) <= max(1, os.cpu_count() // 2)


def test_dask_cluster_gives_the_sequential_results_on_one_thread_per_worker(
    sequential, monkeypatch
):
    distributed = pytest.importorskip("distributed")
    # the workers must get one thread from Dask itself, not from this test run's environment
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert set(client.run(torch.get_num_threads).values()) == {1}
        with parallel_backend("dask"):
            results = search(n_jobs=2).cv_results_
    assert_same_results(results, sequential)
