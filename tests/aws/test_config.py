"""The aws plugin's registration and configuration checks (before any network call)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polybus.adapters.aws import filters, mapping
from polybus.adapters.aws.config import AwsConfig, parse_config
from polybus.adapters.aws.mapping import archive_name, bus_name, queue_name, replay_name, rule_name
from polybus.adapters.aws.plugin import make_adapter
from polybus.core.errors import ConfigError
from polybus.core.hookspecs import AdapterInfo
from polybus.core.plugins import collect_adapters, make_plugin_manager
from polybus.core.sizing import KB


def _registered() -> AdapterInfo:
    pm = make_plugin_manager(("polybus.adapters.aws.plugin",), load_entrypoints=False)
    return collect_adapters(pm)["aws"].info


def test_plugin_registers_everything_aws_specific() -> None:
    """The plugin registers `aws` with its factory, sizing, filter compiler, emulator and extras."""
    info = _registered()
    assert info.factory is make_adapter
    assert info.sizing is not None and info.sizing.measure is mapping.event_size
    assert (info.sizing.limit.limit, info.sizing.limit.strict) == (256 * KB, True)
    assert info.filters is not None and info.filters.compile is filters.compile_filter
    assert info.filters.native_name == "EventBridge event pattern"
    assert info.emulator is not None and info.emulator.requires is not None
    assert info.emulator.requires.extra == "aws-emulator"
    assert info.requires is not None
    assert (info.requires.modules, info.requires.extra) == (("boto3",), "aws")
    assert info.secret_keys == ()
    assert info.sim_profile is not None and info.sim_profile.is_file()


def test_capabilities_declare_what_the_adapter_does() -> None:
    """Replay, native dead letters and filters, SQS's attempt and visibility ranges; no ordering."""
    caps = _registered().capabilities
    assert (caps.replay, caps.native_dead_letter, caps.native_filters) == (True, True, True)
    assert caps.ordering is False and caps.exactly_once is False
    assert caps.delivery_attempts == (1, 100)
    assert caps.ack_deadline == (1.0, 43200.0)
    assert caps.delivery_modes == ("pull",)
    assert caps.max_event_size == 256 * KB


def test_plugin_module_imports_no_sdk() -> None:
    """Importing the plugin (and registering it) loads neither boto3 nor moto."""
    code = (
        "import sys\n"
        "from polybus.core.plugins import collect_adapters, make_plugin_manager\n"
        "pm = make_plugin_manager(('polybus.adapters.aws.plugin',), load_entrypoints=False)\n"
        "collect_adapters(pm)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto')))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "[]"


def test_defaults_when_section_is_empty() -> None:
    """An empty section gives the documented defaults."""
    assert parse_config({}) == AwsConfig(
        region=None,
        endpoint_url=None,
        bus_prefix="polybus-",
        queue_prefix="polybus-",
        wait_time=20.0,
        archive=True,
        archive_retention_days=7,
    )


def test_every_key_is_read() -> None:
    """Each documented key is accepted and normalised."""
    config = parse_config(
        {
            "region": "eu-west-1",
            "endpoint_url": "http://127.0.0.1:5000/",
            "bus_prefix": "app_",
            "queue_prefix": "",
            "wait_time": 2,
            "archive": False,
            "archive_retention_days": 0,
        }
    )
    assert config == AwsConfig("eu-west-1", "http://127.0.0.1:5000", "app_", "", 2.0, False, 0)


def test_unknown_key_suggests_the_close_one() -> None:
    """A misspelt key is refused with a did-you-mean naming the key meant."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"regoin": "eu-west-1"})
    [problem] = caught.value.problems
    assert problem.field == "aws.regoin"
    assert "did you mean 'region'?" in problem.rule


def test_every_problem_is_reported_together() -> None:
    """Unknown and malformed keys are all named in one ConfigError, before any network call."""
    with pytest.raises(ConfigError) as caught:
        make_adapter(
            {
                "region": "Europe",
                "endpoint_url": "localhost:5000",
                "bus_prefix": "has space",
                "wait_time": 25,
                "archive": "yes",
                "archive_retention_days": -1,
                "colour": "blue",
            }
        )
    fields = [p.field for p in caught.value.problems]
    assert fields == [
        "aws.colour",
        "aws.region",
        "aws.endpoint_url",
        "aws.bus_prefix",
        "aws.wait_time",
        "aws.archive",
        "aws.archive_retention_days",
    ]


@pytest.mark.parametrize(
    "key", ["aws_secret_access_key", "aws_access_key_id", "session_token", "password"]
)
def test_credentials_in_config_are_refused_without_echoing_them(key: str) -> None:
    """A credential-looking key is refused and its value never appears in the error."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    with pytest.raises(ConfigError) as caught:
        parse_config({key: secret})
    assert secret not in str(caught.value)
    assert caught.value.problems[0].value == "<redacted>"
    assert "standard AWS chain" in caught.value.problems[0].rule


def test_names_map_as_documented() -> None:
    """Topic and subscription names map to bus, rule, queue and archive names as docs/aws.md says."""
    assert bus_name("polybus-", "orders") == "polybus-orders"
    assert rule_name("polybus-", "billing") == "polybus-billing"
    assert queue_name("polybus-", "billing-dlq") == "polybus-billing-dlq"
    assert archive_name("polybus-orders") == "polybus-orders-archive"


def test_names_aws_refuses_are_made_to_fit_deterministically() -> None:
    """Disallowed characters and over-long names become valid, stable and distinct."""
    long_topic = "t" * 300
    assert len(bus_name("p-", long_topic)) == 256
    assert bus_name("p-", long_topic) == bus_name("p-", long_topic)
    assert "/" not in bus_name("p-", "a/b")
    assert bus_name("p-", "a/b") != bus_name("p-", "a-b")
    dotted = queue_name("polybus-", "orders.v2")
    assert "." not in dotted and dotted.startswith("polybus-orders-v2-")
    assert queue_name("polybus-", "orders.v2") != queue_name("polybus-", "orders-v2")
    assert len(rule_name("polybus-", "s" * 100)) == 64
    assert len(archive_name("polybus-" + "x" * 60)) == 48
    assert len(replay_name("r" * 64, "abcdef0123")) <= 64
