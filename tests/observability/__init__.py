"""Tracing and correlation across hops."""
