"""The dead-letter operations and the live dashboard behind `polybus dlq` and `polybus dashboard`."""
