"""Provider profiles for the simulated broker: one YAML file per provider (data, see sim/broker.py)."""
