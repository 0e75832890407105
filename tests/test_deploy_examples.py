"""The deployment examples in docs/deploy agree with what `polybus run` serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"


def test_probes_and_grace_match_the_image_command() -> None:
    """Probes hit /healthz and /readyz on the health port the image serves, within the grace."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    command = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert command
    argv = yaml.safe_load(command.group(1))
    assert argv[:3] == ["polybus", "run", "service:app"]
    port = int(argv[argv.index("--health-port") + 1])
    grace = float(argv[argv.index("--grace") + 1])
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["ports"][0]["containerPort"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > grace
