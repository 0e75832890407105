"""The native/residual guarantee again, with the native filters evaluated by our emulators.

The Pub/Sub emulator (adapters/gcp) and the Event Grid emulator (adapters/azure)
have their own filter evaluators, written independently from the providers'
docs, and moto evaluates EventBridge patterns; the compilers' output must hold
the guarantee under them too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from moto.events.models import EventPattern

from polybus.adapters.aws.filters import envelope_of, to_eventbridge
from polybus.adapters.azure.emulator.filter import compile_subscription_filter
from polybus.adapters.azure.filters import compile_filter as compile_eventgrid
from polybus.adapters.gcp.emulator.filter import compile_pubsub_filter
from polybus.adapters.gcp.filters import compile_filter, message_attributes
from polybus.core.filters.dialects import Filter
from tests.filters.native_property import check_guarantee
from tests.filters.strategies import events, filters


def _pubsub_emulator(expression: Any, attrs: Mapping[str, Any]) -> bool:
    return compile_pubsub_filter(expression or "")(message_attributes(attrs))


def _eventgrid_emulator(native: Any, attrs: Mapping[str, Any]) -> bool:
    return compile_subscription_filter(native)(dict(attrs))


@settings(max_examples=400, deadline=None)
@given(filters, events())
def test_pubsub_emulator_holds_the_guarantee(flt: Filter, attrs: dict[str, Any]) -> None:
    """Pub/Sub filters from compile_filter, evaluated by the gcp emulator: native ⊇ portable, exact with the residual."""
    check_guarantee(flt, attrs, compile_filter, _pubsub_emulator)


@settings(max_examples=250, deadline=None)
@given(filters, events())
def test_eventgrid_emulator_holds_the_guarantee(flt: Filter, attrs: dict[str, Any]) -> None:
    """Event Grid filters from the azure compile_filter, evaluated by the azure emulator: the same guarantee."""
    check_guarantee(flt, attrs, compile_eventgrid, _eventgrid_emulator)


def _no_moto_boolean_quirk(attrs: dict[str, Any]) -> bool:
    """moto matches pattern [1] against true (AWS does not): keep boolean extensions out."""
    return not any(isinstance(v, bool) for v in attrs.values())


def _moto(pattern: Any, attrs: Mapping[str, Any]) -> bool:
    if pattern is None:
        return True
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(envelope_of(attrs)))


@settings(max_examples=250, deadline=None)
@given(filters, events().filter(_no_moto_boolean_quirk))
def test_moto_pattern_matcher_holds_the_guarantee(flt: Filter, attrs: dict[str, Any]) -> None:
    """EventBridge patterns from to_eventbridge, matched by moto's own matcher: the same guarantee."""
    check_guarantee(flt, attrs, to_eventbridge, _moto)
