"""The simulation harness: request-based vs event-based topologies on SimPy, validated against queueing theory.

schema + loader (strict YAML -> topology), population (device arrivals as
arrays), engine (SimPy), fastpath (vectorised Lindley), broker (provider
profiles and cost), executors + runner (replications inline, on a process pool
or on Dask), results (typed results and the one JSON writer), metrics/stats
(CIs), lookup (metric paths and units), output/report/plot, sweep, exercises.
See docs/sim.md.
"""
