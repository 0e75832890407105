"""Hypothesis strategies: random events (attribute mappings) and random portable filters."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from polybus.core.filters.cesql.ast import quote
from polybus.core.filters.dialects import All, AnyOf, Exact, Filter, Not, Prefix, Sql, Suffix

OPTIONAL = ("subject", "time", "myext", "num", "flag", "region")
NAMES = ("type", "source", "id", *OPTIONAL)
#: Small pools so that random filters often hit random events.
TEXTS = (
    "a",
    "ab",
    "A",
    "aB",
    "b",
    "eu-1",
    "eu-",
    "5",
    "05",
    "-3",
    "true",
    "false",
    "TRUE",
    "x.y",
    "",
)
NONEMPTY = tuple(t for t in TEXTS if t)

texts = st.sampled_from(TEXTS) | st.text(alphabet="aAb-5.", max_size=4)
values = texts | st.integers(-6, 6) | st.booleans()


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event's attributes: the required ones as strings, optional ones of any type."""
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(texts),
        "source": draw(texts),
        "type": draw(texts),
    }
    for name in OPTIONAL:
        if draw(st.booleans()):
            value = draw(texts) if name in ("subject", "time") else draw(values)
            attrs[name] = value
    return attrs


names = st.sampled_from(NAMES)


def _like_pattern() -> st.SearchStrategy[str]:
    return st.sampled_from(("a%", "%a", "eu-%", "%-1", "a", "%", "a_", "%b%", "a\\%", "5%"))


def _sql_atoms() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda n, t: f"{n} = {quote(t)}", names, texts),
        st.builds(lambda n, t: f"{n} != {quote(t)}", names, texts),
        st.builds(lambda n, p: f"{n} LIKE {quote(p)}", names, _like_pattern()),
        st.builds(lambda n, p: f"{n} NOT LIKE {quote(p)}", names, _like_pattern()),
        st.builds(
            lambda n, ts: f"{n} IN ({', '.join(quote(t) for t in ts)})",
            names,
            st.lists(texts, min_size=1, max_size=3),
        ),
        st.builds(lambda n: f"EXISTS {n}", names),
        st.builds(
            lambda n, op, k: f"{n} {op} {k}", names, st.sampled_from("<>="), st.integers(-3, 6)
        ),
        st.builds(lambda n, t: f"LOWER({n}) = {quote(t.lower())}", names, texts),
        st.sampled_from(("TRUE", "FALSE", "num + 1 = 3", "LENGTH(subject) > 1", "flag")),
    )


sql_expressions = st.recursive(
    _sql_atoms(),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) OR ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) XOR ({b})", inner, inner),
        st.builds(lambda a: f"NOT ({a})", inner),
    ),
    max_leaves=5,
)


def _leaves() -> st.SearchStrategy[Filter]:
    return st.one_of(
        st.builds(Exact, names, texts),
        st.builds(
            Prefix, names, st.sampled_from(NONEMPTY) | st.text("aAb-5", min_size=1, max_size=3)
        ),
        st.builds(
            Suffix, names, st.sampled_from(NONEMPTY) | st.text("aAb-5", min_size=1, max_size=3)
        ),
        st.builds(Sql, sql_expressions),
    )


filters: st.SearchStrategy[Filter] = st.recursive(
    _leaves(),
    lambda inner: st.one_of(
        st.builds(lambda fs: All(tuple(fs)), st.lists(inner, max_size=3)),
        st.builds(lambda fs: AnyOf(tuple(fs)), st.lists(inner, max_size=3)),
        st.builds(Not, inner),
    ),
    max_leaves=6,
)
