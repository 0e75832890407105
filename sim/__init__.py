"""The simulation harness: request-based vs event-based topologies on SimPy, validated against queueing theory.

loader (YAML -> topology), population (device arrivals as arrays), engine
(SimPy), fastpath (vectorised Lindley), broker (provider profiles and cost),
runner (replications in parallel), metrics/stats (CIs), output/report/plot,
sweep, exercises. See docs/sim.md.
"""
