"""Configuration: file, environment override, defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from polybus.adapters import connect
from polybus.core.config import Config, check_keys, load_config
from polybus.core.errors import ConfigError, UnknownProviderError


def test_defaults_to_local_without_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no file and no variables the embedded local provider is chosen."""
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.provider == "local" and config.source == "defaults"


def test_file_then_environment_override(tmp_path: Path) -> None:
    """The file picks the provider; POLYBUS_PROVIDER overrides it; tables are kept."""
    path = tmp_path / "polybus.toml"
    path.write_text('provider = "aws"\n[aws]\nregion = "eu-west-1"\n')
    assert load_config(path, environ={}).provider == "aws"
    config = load_config(path, environ={"POLYBUS_PROVIDER": "local"})
    assert config.provider == "local"
    assert config.settings("aws") == {"region": "eu-west-1"}


def test_polybus_config_variable_names_the_file(tmp_path: Path) -> None:
    """POLYBUS_CONFIG points at the file when no path is given."""
    path = tmp_path / "other.toml"
    path.write_text('provider = "gcp"\n')
    assert load_config(environ={"POLYBUS_CONFIG": str(path)}).provider == "gcp"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    """A TOML syntax error is reported with the file's path."""
    path = tmp_path / "bad.toml"
    path.write_text("provider = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value) and "invalid TOML" in str(info.value)


def test_wrong_shapes_name_key_and_expectation(tmp_path: Path) -> None:
    """A non-string provider and a non-table section are both reported, with file and key."""
    path = tmp_path / "p.toml"
    path.write_text('provider = 3\nregion = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    text = str(info.value)
    assert f"{path}: provider=3: must be a non-empty string" in text
    assert "region" in text and "one [table] per provider" in text


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """Naming a file that does not exist is an error, not a silent default."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_unknown_provider_lists_available() -> None:
    """Choosing an unregistered provider fails and lists the ones that exist."""
    with pytest.raises(UnknownProviderError) as info:
        connect(Config(provider="ibm"))
    assert "ibm" in str(info.value) and "local" in str(info.value)


def test_provider_settings_are_checked() -> None:
    """Unknown keys and wrong types in a provider table are all reported."""
    with pytest.raises(ConfigError) as info:
        connect(Config(provider="local", providers={"local": {"durable": "yes", "colour": 1}}))
    fields = {p.field for p in info.value.problems}
    assert fields == {"local.durable", "local.colour"}


def test_check_keys_rejects_bool_for_int() -> None:
    """A boolean is not accepted where an integer is expected."""
    with pytest.raises(ConfigError, match="must be int"):
        check_keys("x", {"n": True}, {"n": int})


def test_masked_hides_secrets() -> None:
    """Secret settings are masked when shown."""
    config = Config("azure", {"azure": {"endpoint": "http://e", "key": "s3cret"}}, "f")
    shown = config.masked({"azure": ("key",)})
    assert shown["azure"] == {"endpoint": "http://e", "key": "********"}


SECRET = "zz-Very-Secret-Value-42"


@pytest.mark.parametrize(
    "line",
    [
        f'Key = "{SECRET}"',  # a misspelt secret key
        f'api_TOKEN = "{SECRET}"',
        f'Password = "{SECRET}"',
        f'sasToken = "{SECRET}"',
        f'client-credential = "{SECRET}"',
        f'connection = "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey={SECRET}"',
        f'nested = {{ apiKey = "{SECRET}" }}',
        f'urls = ["https://x?sv=1&sig={SECRET}"]',
    ],
)
def test_config_show_never_prints_a_secret_looking_value(tmp_path: Path, line: str) -> None:
    """polybus config show never prints a secret-looking value, whether it shows the table or refuses a key."""
    from click.testing import CliRunner

    from polybus.cli.main import cli

    path = tmp_path / "polybus.toml"
    path.write_text(f'provider = "local"\n[azure]\nendpoint = "http://e"\n{line}\n')
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(cli, ["--config", str(path), "config", "show", "--all", *extra])
        assert SECRET not in result.output
        if result.exit_code == 0:  # a key the [azure] parser accepts: the table is shown, masked
            assert "http://e" in result.output
        else:  # an unknown key: refused (exit 2) naming the key, never its value
            assert result.exit_code == 2 and "unknown key" in result.output, result.output


def test_errors_never_echo_values_of_unknown_or_secret_keys() -> None:
    """An unknown key's value is never in the error, only the key and the rule; a secret-looking known one is masked."""
    with pytest.raises(ConfigError) as info:
        check_keys(
            "azure",
            {"Key": SECRET, "colour": SECRET, "key": 5, "token": [SECRET], "timeout": "slow"},
            {"key": str, "token": str, "timeout": float},
        )
    text = str(info.value)
    assert SECRET not in text
    assert "azure.Key=<value not shown>: unknown key; did you mean 'key'?" in text
    assert "azure.timeout='slow': must be float" in text  # a plain known value is still shown
    assert "azure.key=<value not shown>: must be str" in text


def test_top_level_values_are_not_echoed(tmp_path: Path) -> None:
    """A secret written outside any table is reported by key, without its value."""
    path = tmp_path / "p.toml"
    path.write_text(f'key = "{SECRET}"\nprovider = {{ token = "{SECRET}" }}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert SECRET not in str(info.value) and "key" in str(info.value)


def test_non_utf8_file_names_the_rule(tmp_path: Path) -> None:
    """A Latin-1 configuration file is a ConfigError saying TOML is UTF-8, not a UnicodeDecodeError."""
    path = tmp_path / "p.toml"
    path.write_bytes('provider = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path, environ={})
