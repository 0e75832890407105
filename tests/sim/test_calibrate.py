"""`polybus sim calibrate`: log-normal fits of publish and delivery latency from spans, written as a profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from polybus.cli.main import cli
from polybus.core.errors import ConfigError
from polybus.core.tracing.records import SpanRecord
from polybus.sim.calibrate import calibrate, fit_lognormal, latency_overrides, read_spans
from polybus.sim.distributions import parse_distribution

PUBLISH_MEDIAN, PUBLISH_SIGMA = 0.0008, 0.4
DELIVERY_MEDIAN, DELIVERY_SIGMA = 0.003, 0.6
N = 2000


def _spans(path: Path, seed: int = 11) -> Path:
    """Synthetic spans: each publish lasts a log-normal draw and is delivered after another."""
    rng = np.random.default_rng(seed)
    pub = rng.lognormal(np.log(PUBLISH_MEDIAN), PUBLISH_SIGMA, N)
    dlv = rng.lognormal(np.log(DELIVERY_MEDIAN), DELIVERY_SIGMA, N)
    lines = []
    t = 1_700_000_000_000_000_000
    for i in range(N):
        end = t + int(pub[i] * 1e9)
        start = end + int(dlv[i] * 1e9)
        lines.append(SpanRecord("a" * 32, f"p{i:015d}", None, "send t", "PRODUCER", "s", t, end))
        lines.append(SpanRecord("a" * 32, f"c{i:015d}", f"p{i:015d}", "process x", "CONSUMER",
                                "x", start, start + 1000))  # fmt: skip
        t += 10_000_000
    queued = SpanRecord("a" * 32, "q" * 16, "p" + "0" * 15, "process x", "CONSUMER", "x",
                        t, t + 1, {"polybus.sim.queued": True})  # fmt: skip
    path.write_text("".join(r.to_json() + "\n" for r in [*lines, queued]))
    return path


def test_recovers_an_injected_lognormal(tmp_path: Path) -> None:
    """Medians within 5% and sigmas within 5% of the injected ones; the KS statistic is small."""
    cal = calibrate(_spans(tmp_path / "s.jsonl"))
    assert cal.publish.median == pytest.approx(PUBLISH_MEDIAN, rel=0.05)
    assert cal.delivery.median == pytest.approx(DELIVERY_MEDIAN, rel=0.05)
    assert cal.publish.sigma == pytest.approx(PUBLISH_SIGMA, rel=0.05)
    assert cal.delivery.sigma == pytest.approx(DELIVERY_SIGMA, rel=0.05)
    assert cal.publish.ks < 0.05 and cal.delivery.ks < 0.05
    assert cal.skipped_queued == 1  # waited for a busy worker: not a delivery latency


def test_ks_flags_a_sample_that_is_not_lognormal() -> None:
    """A uniform sample fits worse (larger D) than a log-normal one of the same size."""
    rng = np.random.default_rng(3)
    good = fit_lognormal(rng.lognormal(0.0, 0.5, 1000).tolist())
    bad = fit_lognormal(rng.uniform(1.0, 2.0, 1000).tolist())
    assert bad.ks > 2 * good.ks


def test_cli_writes_a_profile_with_provenance(tmp_path: Path) -> None:
    """The profile keeps the base figures, replaces both latencies and says where they came from."""
    spans = _spans(tmp_path / "s.jsonl")
    out = tmp_path / "local-calibrated.yaml"
    result = CliRunner().invoke(cli, ["sim", "calibrate", str(spans), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text())
    assert doc["provider"] == "local" and doc["max_attempts"]["value"] == 5
    assert (
        str(spans) in doc["publish_latency"]["source"]
        and "n=2000" in doc["publish_latency"]["source"]
    )
    assert doc["calibration"]["delivery_latency"]["n"] == N
    overrides = latency_overrides(out)
    problems: list = []
    dist = parse_distribution(overrides["delivery_latency"], "d", problems)
    assert not problems
    assert float(np.median(dist.sample(np.random.default_rng(0), 20000))) == pytest.approx(
        DELIVERY_MEDIAN, rel=0.05
    )


def test_empirical_fit_keeps_the_tail(tmp_path: Path) -> None:
    """--fit empirical writes quantiles whose p99 matches the sample's."""
    spans = _spans(tmp_path / "s.jsonl")
    result = CliRunner().invoke(cli, ["sim", "calibrate", str(spans), "--fit", "empirical"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output[result.output.index("provider:") :])
    samples = doc["publish_latency"]["value"]["samples"]
    cal = calibrate(spans)
    assert np.percentile(samples, 99) == pytest.approx(
        np.percentile(cal.publish_samples, 99), rel=0.05
    )


def test_json_output_lists_both_fits(tmp_path: Path) -> None:
    """--json prints n, mu, sigma, median, p99 and KS D for both latencies."""
    result = CliRunner().invoke(
        cli, ["sim", "calibrate", str(_spans(tmp_path / "s.jsonl")), "--json"]
    )
    fits = json.loads(result.output)
    assert set(fits["publish_latency"]) == {"n", "mu", "sigma", "median", "p99", "ks"}


def test_bad_lines_and_too_few_samples_are_errors(tmp_path: Path) -> None:
    """A malformed line names its number; fewer than 10 publishes is a ConfigError, no traceback."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x"}\nnot json\n')
    with pytest.raises(ConfigError, match="line 1"):
        read_spans(bad)
    few = tmp_path / "few.jsonl"
    few.write_text(SpanRecord("a" * 32, "b" * 16, None, "send t", "PRODUCER", "s", 0, 5).to_json())
    result = CliRunner().invoke(cli, ["sim", "calibrate", str(few)])
    assert result.exit_code != 0 and "at least 10" in result.output
    assert "Traceback" not in result.output
