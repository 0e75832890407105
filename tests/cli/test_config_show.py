"""`polybus config show`: validation, defaults and origins, one table per provider, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from polybus.cli.main import cli

AZURE = '[azure]\nendpoint = "http://127.0.0.1:8086"\nkey = "c2VjcmV0LWtleQ=="\nadmin = true\n'
SECRET = "c2VjcmV0LWtleQ=="


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner in an empty directory with no polybus variables in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "POLYBUS_CONFIG",
        "POLYBUS_PROVIDER",
        "POLYBUS_AZURE_KEY",
        "POLYBUS_AZURE_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def show(runner: CliRunner, text: str, *args: str) -> Result:
    """Run `config show ARGS` against a polybus.toml holding `text`."""
    Path("polybus.toml").write_text(text)
    return runner.invoke(cli, ["config", "show", *args])


def effective(result: Result) -> dict[str, dict[str, dict[str, object]]]:
    """The `effective` part of `config show --json`."""
    assert result.exit_code == 0, result.output
    shown: dict[str, dict[str, dict[str, dict[str, object]]]] = json.loads(result.output)
    return shown["effective"]


def test_table_headers_are_printed_literally(runner: CliRunner) -> None:
    """`[azure]` and other `[table]` headers appear as written, not swallowed as rich markup."""
    result = show(runner, f'provider = "azure"\n{AZURE}[journal]\npath = "j.db"\n')
    assert result.exit_code == 0, result.output
    assert "[azure]" in result.output and "[journal]" in result.output


def test_defaults_are_shown_with_their_origin(runner: CliRunner) -> None:
    """Keys from the file say 'file', the rest show their default value and say 'default'."""
    table = effective(show(runner, 'provider = "local"\n[local]\ndurable = true\n', "--json"))
    assert table["local"]["durable"] == {"value": True, "from": "file"}
    assert table["local"]["path"] == {"value": "polybus.db", "from": "default"}


def test_environment_values_say_so_and_stay_masked(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key read from its environment variable is shown as such, its secret value masked."""
    monkeypatch.setenv("POLYBUS_AZURE_KEY", SECRET)
    text = 'provider = "azure"\n[azure]\nendpoint = "http://127.0.0.1:8086"\n'
    result = show(runner, text, "--json")
    assert SECRET not in result.output
    assert effective(result)["azure"]["key"] == {
        "value": "********",
        "from": "environment ($POLYBUS_AZURE_KEY)",
    }


def test_secrets_are_masked_in_the_table_too(runner: CliRunner) -> None:
    """The human table masks the key and shows the other settings."""
    result = show(runner, f'provider = "azure"\n{AZURE}')
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "********" in result.output
    assert "http://127.0.0.1:8086" in result.output


def test_only_the_chosen_provider_unless_all(runner: CliRunner) -> None:
    """Another provider's table is not shown by default; --all shows every registered one."""
    text = f'provider = "gcp"\n[gcp]\nproject = "my-proj"\n{AZURE}'
    assert set(effective(show(runner, text, "--json"))) == {"gcp"}
    every = effective(show(runner, text, "--json", "--all"))
    assert {"aws", "azure", "gcp", "local"} <= set(every)


def test_polybus_provider_picks_the_table_shown(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POLYBUS_PROVIDER overrides the file's provider: its table is shown, and where it came from."""
    monkeypatch.setenv("POLYBUS_PROVIDER", "gcp")
    result = show(runner, f'provider = "azure"\n{AZURE}[gcp]\nproject = "my-proj"\n', "--json")
    shown = json.loads(result.output)
    assert shown["provider"] == "gcp"
    assert shown["provider_from"] == "environment ($POLYBUS_PROVIDER)"
    assert set(shown["effective"]) == {"gcp"} and "azure" not in shown


def test_unknown_key_exits_2_with_did_you_mean(runner: CliRunner) -> None:
    """A misspelt key is exit 2 naming the field and suggesting the right key."""
    result = show(runner, 'provider = "gcp"\n[gcp]\nprojekt = "x"\n')
    assert result.exit_code == 2
    assert "gcp.projekt" in result.output and "did you mean 'project'?" in result.output


def test_wrong_type_exits_2_naming_field_value_and_rule(runner: CliRunner) -> None:
    """A value of the wrong type is exit 2 with the field, the value and the rule."""
    result = show(runner, 'provider = "gcp"\n[gcp]\nbatch_max_messages = "ten"\n')
    assert result.exit_code == 2
    assert "gcp.batch_max_messages='ten': must be int" in result.output


def test_problems_in_other_provider_tables_are_found_too(runner: CliRunner) -> None:
    """A typo in a table that is not the chosen one still fails validation."""
    result = show(runner, 'provider = "local"\n[aws]\nregoin = "eu-west-1"\n')
    assert result.exit_code == 2 and "did you mean 'region'?" in result.output


def test_unknown_provider_and_misspelt_table_are_named(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown provider and a table named close to a provider get a did-you-mean."""
    monkeypatch.setenv("POLYBUS_PROVIDER", "awss")
    result = show(runner, '[gpc]\nproject = "x"\n')
    assert result.exit_code == 2
    assert "did you mean 'aws'?" in result.output and "did you mean [gcp]?" in result.output
    assert "Traceback" not in result.output


def test_unconfigured_providers_under_all_say_what_they_need(runner: CliRunner) -> None:
    """With --all, a provider that needs settings the file lacks says which, without failing."""
    result = show(runner, 'provider = "local"\n', "--json", "--all")
    assert result.exit_code == 0, result.output
    assert "azure.endpoint" in json.loads(result.output)["notes"]["azure"]
