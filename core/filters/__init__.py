"""Portable subscription filters: the Subscriptions API dialects and CESQL."""

from polybus.core.filters.dialects import (
    All,
    AnyOf,
    Exact,
    Filter,
    Not,
    Predicate,
    Prefix,
    Sql,
    Suffix,
    canonical_string,
    compile_filter,
    parse_filter,
    to_json,
)

__all__ = [
    "All",
    "AnyOf",
    "Exact",
    "Filter",
    "Not",
    "Predicate",
    "Prefix",
    "Sql",
    "Suffix",
    "canonical_string",
    "compile_filter",
    "parse_filter",
    "to_json",
]
