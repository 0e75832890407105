"""Fault injection over every provider (issue 14)."""
