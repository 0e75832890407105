"""The layout rules of issue 13: one import name, core and cli free of clouds, one adapter shape."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "adapters", "sim", "scenarios", "cli")
CLOUDS = ("aws", "azure", "gcp")
CLOUD_WORDS = re.compile(r"aws|azure|gcp|google|eventbridge|eventgrid|pubsub|sqs|boto|moto")
# google.protobuf is a serialisation library (the Protobuf event format), not a cloud SDK.
SDK_MODULES = ("boto3", "botocore", "moto", "google.cloud", "google.api_core", "google.auth",
               "azure", "grpc", "aiohttp")
SHAPE = {
    "__init__.py",
    "plugin.py",
    "config.py",
    "adapter.py",
    "delivery.py",
    "mapping.py",
    "filters.py",
    "provisioning.py",
    "plan.py",
    "errors.py",
    "monitoring.py",
    "sim_profile.yaml",
    "emulator",
}
# Modules a provider keeps beyond the shape, each for a reason docs/layout.md gives.
EXTRA_MODULES: dict[str, set[str]] = {
    "aws": {"replay.py"},
    "azure": {"push.py", "arm.py", "identity.py"},  # webhooks; ARM provisioning; Entra ID
    "gcp": set(),
}


def _python_files(*roots: str) -> list[Path]:
    return [
        p for root in roots for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts
    ]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_nothing_imports_the_old_top_level_names() -> None:
    """Every import of polybus code goes through `polybus.`; `core`, `adapters`... are gone."""
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files(*PACKAGES, "tests", "bench", "examples")
        for name in _imports(path)
        if name.split(".")[0] in PACKAGES
    ]
    assert offenders == []


@pytest.mark.parametrize("root", ["core", "cli"])
def test_core_and_cli_import_no_cloud(root: str) -> None:
    """core/ and cli/ import no cloud adapter module and no cloud SDK."""
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files(root)
        for name in _imports(path)
        if any(name == sdk or name.startswith(f"{sdk}.") for sdk in SDK_MODULES)
        or any(name.startswith(f"polybus.adapters.{cloud}") for cloud in (*CLOUDS, "local"))
    ]
    assert offenders == []


def test_core_has_no_module_named_after_a_cloud() -> None:
    """No file or folder under core/ is named after a cloud or its services."""
    named = [
        str(p.relative_to(REPO)) for p in (REPO / "core").rglob("*") if CLOUD_WORDS.search(p.name)
    ]
    assert named == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_cloud_adapter_has_the_same_files(cloud: str) -> None:
    """Each cloud adapter package holds the shared shape plus only its documented extras."""
    folder = REPO / "adapters" / cloud
    present = {p.name for p in folder.iterdir() if p.name != "__pycache__"}
    assert present == SHAPE | EXTRA_MODULES[cloud]
    assert (folder / "emulator" / "__init__.py").is_file()


@pytest.mark.parametrize("cloud", CLOUDS)
def test_shipping_modules_never_import_the_emulator(cloud: str) -> None:
    """Code used against the real cloud imports nothing from the adapter's emulator package."""
    folder = REPO / "adapters" / cloud
    offenders = []
    for path in folder.glob("*.py"):
        if path.name == "plugin.py":
            continue  # registers the emulator's start function, imported when called
        source = path.read_text(encoding="utf-8")
        if re.search(rf"polybus\.adapters\.{cloud}\.emulator|from \.emulator", source):
            offenders.append(path.name)
    assert offenders == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_sdk_errors_are_translated_in_one_named_place(cloud: str) -> None:
    """Each adapter's errors.py defines translate_errors; no other module defines a translator."""
    folder = REPO / "adapters" / cloud
    defined = {
        path.name
        for path in folder.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
        and re.fullmatch(r"_?(translate_errors|sdk_errors|translated)", node.name)
    }
    assert defined == {"errors.py"}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_adapter_class_is_named_after_the_provider(cloud: str) -> None:
    """adapter.py defines <Provider>Adapter (AwsAdapter, AzureAdapter, GcpAdapter)."""
    tree = ast.parse((REPO / "adapters" / cloud / "adapter.py").read_text(encoding="utf-8"))
    classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    assert f"{cloud.capitalize()}Adapter" in classes
