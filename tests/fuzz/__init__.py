"""Fuzz tests: every decoder and parser raises only polybus errors."""
