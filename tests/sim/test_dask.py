"""Sweeps on a Dask distributed cluster give the same numbers as the local process pool."""

from __future__ import annotations

from pathlib import Path

from distributed import LocalCluster

from polybus.sim.sweep import sweep

CART = Path(__file__).resolve().parents[2] / "scenarios" / "shopping_cart.yaml"


def test_sweep_on_a_local_cluster_matches_local_run() -> None:
    """A two-point sweep through a LocalCluster scheduler address equals the same sweep run locally."""
    params = {"workload.checkout.rate": [20, 40]}
    kwargs = {"replications": 2, "duration": 30.0, "topologies": ["request"]}
    local = sweep(CART, params, workers=1, **kwargs)  # type: ignore[arg-type]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = sweep(CART, params, scheduler=cluster.scheduler_address, **kwargs)  # type: ignore[arg-type]
    assert [p.metric for p in remote.points] == [p.metric for p in local.points]
    assert remote.points[1].metric["request"].value > remote.points[0].metric["request"].value
