"""`polybus sim lab`: sliders re-run the scenario, topologies are drawn, exercises ask before they answer."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from polybus.sim.lab import Lab, LabServer, Settings

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip

TINY: dict[str, Any] = {
    "name": "tiny-lab",
    "description": "A gateway calls a worker (request) or publishes to a topic the worker consumes (event).",
    "duration": 20,
    "warmup": 2,
    "replications": 2,
    "seed": 7,
    "provider": "local",
    "workload": {"orders": {"pattern": "poisson", "rate": 20}},
    "topologies": {
        "request": {
            "entry": {"orders": "gateway"},
            "services": {
                "gateway": {"workers": 8, "service_time": 0.002, "calls": [{"to": "worker"}]},
                "worker": {"workers": 2, "service_time": {"dist": "exponential", "mean": 0.05}},
            },
        },
        "event": {
            "entry": {"orders": "gateway"},
            "topics": {"placed": {}},
            "services": {
                "gateway": {"workers": 8, "service_time": 0.002, "publish": ["placed"]},
                "worker": {"workers": 2, "consumes": ["placed"],
                           "service_time": {"dist": "exponential", "mean": 0.05}},
            },
        },
    },
    "exercises": [{
        "question": "The worker loses a worker (2 -> 1). What happens to the request topology's p99?",
        "change": {"topologies.request.services.worker.workers": 1},
        "topology": "request", "metric": "flows.orders.latency.p99",
        "expect": {"ratio_above": 1.0}, "answer": "It rises: the one worker queues.",
        "duration": 10, "warmup": 1, "replications": 2,
    }],
}  # fmt: skip


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny two-topology scenario with one exercise, as a file."""
    path = tmp_path_factory.mktemp("lab") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(scenario_file: Path) -> Iterator[LabServer]:
    """The lab serving the tiny scenario on a free local port (10 s runs, 2 replications)."""
    srv = LabServer(Lab(scenario_file, duration=10, replications=2)).start()
    yield srv
    srv.close()


def _post(url: str, body: object) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_settings_become_overrides_of_the_scenario_file(scenario_file: Path) -> None:
    """A load factor scales the flow's rate, workers apply to every topology, a fault lands mid-run."""
    lab = Lab(scenario_file, duration=10)
    over = lab.overrides(Settings({"orders": 1.5}, {"worker": 3}, "", "outage:worker"))
    assert over["workload.orders.rate"] == pytest.approx(30.0)
    assert over["topologies.request.services.worker.workers"] == 3
    assert over["topologies.event.services.worker.workers"] == 3
    assert over["faults"] == [{"service": "worker", "outage": True, "start": 4.0, "end": 6.0}]
    assert over["duration"] == 10


def test_topologies_are_drawn_as_boxes_and_arrows(scenario_file: Path) -> None:
    """The event drawing has a box per flow, service and topic, solid call arrows and dashed event arrows."""
    request, event = (ET.fromstring(svg) for svg in Lab(scenario_file).diagrams({}))
    names = {g.get("data-name") for g in event.iter(f"{SVG}g") if "node" in (g.get("class") or "")}
    assert names == {"orders", "gateway", "placed", "worker"}
    edges = {(p.get("data-from"), p.get("data-to"), bool(p.get("stroke-dasharray")))
             for p in event.iter(f"{SVG}path") if p.get("class") == "edge"}  # fmt: skip
    assert edges == {
        ("flow:orders", "gateway", False), ("gateway", "placed", True), ("placed", "worker", True),
    }  # fmt: skip
    calls = {(p.get("data-from"), p.get("data-to")) for p in request.iter(f"{SVG}path")}
    assert ("gateway", "worker") in calls


def test_the_api_answers_an_exercise_only_after_a_prediction(server: LabServer) -> None:
    """Without a committed direction the server refuses (400, no answer); with one it reveals the measurement."""
    status, body = _post(server.url + "api/exercise", {"index": 0})
    assert status == 400 and "answer" not in body and "commit one of" in body["error"]
    status, body = _post(
        server.url + "api/exercise", {"index": 0, "prediction": {"direction": "up"}}
    )
    assert status == 200, body
    assert (
        body["changed"] > body["baseline"]
        and body["measured_direction"] == "up"
        and body["correct"]
    )
    assert body["answer"] == "It rises: the one worker queues."
    assert re.fullmatch(r"[\d.,]+ (ms|s)", body["baseline_text"])


def test_the_api_rejects_bad_settings_with_a_message(server: LabServer) -> None:
    """Unknown services and faults are refused with 400 and say what was wrong."""
    status, body = _post(server.url + "api/run", {"workers": {"wokrer": 2}})
    assert status == 400 and "wokrer" in body["error"]
    status, body = _post(server.url + "api/run", {"fault": "meteor"})
    assert status == 400 and "meteor" in body["error"]


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the lab's browser test needs Playwright's Python package: pip install playwright "
            "(it drives the system chromium; do not run 'playwright install')"
        )
    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is required: add 'chromium' to .ci/debian-packages"
    )
    return sync_playwright


def _cdf_points(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "figure[data-chart='latency-cdf'] polyline.series",
        "ls => ls.map(l => l.getAttribute('points'))",
    )


def test_moving_a_slider_changes_the_chart_in_chromium(server: LabServer) -> None:
    """In headless Chromium: the page draws both topologies and every chart readably; a rate slider redraws the CDF."""
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url)
            page.wait_for_selector("body[data-run='1']", timeout=60_000)
            assert page.locator("#diagrams svg.topology").count() == 2
            figures = page.locator("figure[data-chart]").count()
            assert figures >= 4
            body = page.locator("body")
            assert body.get_attribute("data-charts-rendered") == str(figures)
            assert body.get_attribute("data-chart-clashes") == "0"
            assert body.get_attribute("data-text-on-plot") == "0"
            before = _cdf_points(page)
            page.fill("input[data-flow='orders']", "2.5")
            page.wait_for_selector("body[data-run='2']:not([data-busy])", timeout=60_000)
            assert "50.0 /s" in (page.locator("#load output").text_content() or "")
            after = _cdf_points(page)
            assert before and after and before != after
        finally:
            browser.close()


def test_exercise_mode_hides_the_answer_until_a_prediction_is_committed(server: LabServer) -> None:
    """In Chromium: committing with no choice shows no answer; choosing 'up' and committing reveals it."""
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url)
            card = page.locator(".exercise").first
            card.wait_for(timeout=30_000)
            card.locator("button.commit").click()
            assert "first" in (card.locator(".outcome").text_content() or "")
            assert card.locator(".answer").count() == 0
            card.locator("input[value='up']").check()
            card.locator("input.guess").fill("40")
            card.locator("button.commit").click()
            card.locator(".answer").wait_for(timeout=60_000)
            assert card.locator(".answer").text_content() == "It rises: the one worker queues."
            assert "You said up by 40" in (card.locator(".measured").text_content() or "")
            assert card.locator("button.commit").is_disabled()
        finally:
            browser.close()
