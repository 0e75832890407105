"""`polybus dashboard`: metrics parsing, the JSON endpoints, and the live page in Chromium."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from polybus.adapters.local.durable import DurableBus
from polybus.cli.main import cli
from polybus.core.bus import Bus, Subscription
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.dashboard.metrics import MetricsSource, parse, quantile
from polybus.core.dashboard.server import Dashboard, DashboardServer, parse_subscriptions
from polybus.core.events import new_event
from polybus.core.runtime.metrics import RuntimeStats, prometheus_text
from tests.contract.helpers import receive_n

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
FAST = DeliveryPolicy(retry=RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def _runtime(acked: int, retried: int, durations: list[float]) -> tuple[Subscription, RuntimeStats]:
    sub = Subscription(SubscriptionSpec("orders", "shop"), lambda event: None, None)
    sub.stats.delivered = acked + retried
    sub.stats.acked, sub.stats.retried = acked, retried
    runtime = RuntimeStats()
    for seconds in durations:
        runtime.handler_seconds.observe(seconds)
    return sub, runtime


def test_parse_reads_what_polybus_run_exposes() -> None:
    """Counters and cumulative buckets come back per subscription from the runtime's own text."""
    text = prometheus_text([_runtime(3, 1, [0.003, 0.02, 0.2, 3.0])], app="svc")
    counters, buckets = parse(text)["orders"]
    assert counters["acked"] == 3 and counters["retried"] == 1 and counters["delivered"] == 4
    assert buckets[0] == (0.005, 1.0) and buckets[-1] == (float("inf"), 4.0)


def test_quantile_interpolates_like_histogram_quantile() -> None:
    """The median of 10 observations in (0.1, 0.25] with 10 below 0.1 is the 0.1 bound."""
    buckets = [(0.1, 10.0), (0.25, 20.0), (float("inf"), 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.175)
    assert quantile(0.5, [(float("inf"), 0.0)]) is None


def test_rates_come_from_the_change_over_the_window() -> None:
    """Throughput, retry and error rate and p99 describe what happened between two polls."""
    clock = FakeClock()
    source = MetricsSource("http://unused:1", clock=clock)
    assert source.url == "http://unused:1/metrics"
    source.record(prometheus_text([_runtime(10, 0, [0.01] * 10)], app="svc"))
    clock.now += 2.0
    source.record(prometheus_text([_runtime(30, 5, [0.01] * 10 + [0.4] * 20)], app="svc"))
    [rates] = source.rates()
    assert rates.throughput == pytest.approx(10.0)  # 20 acked in 2 s
    assert rates.retry_rate == pytest.approx(2.5)
    assert rates.error_rate == pytest.approx(5 / 25)
    assert rates.p50 is not None and 0.25 < rates.p50 <= 0.5  # only the slow ones in the window


class _Metrics:
    """A `/metrics` endpoint serving the runtime's real exposition of counters the test moves."""

    def __init__(self) -> None:
        self.acked = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                """The Prometheus text for the current counters."""
                n = outer.acked
                body = prometheus_text([_runtime(n, n // 10, [0.02] * n)], app="svc").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[DashboardServer, DurableBus, _Metrics]]:
    """A dashboard on a durable bus with the `orders` subscription and one metrics endpoint."""
    adapter = DurableBus(tmp_path / "bus.db")
    adapter.provision(SubscriptionSpec("orders", "shop", None, FAST))
    metrics = _Metrics()
    board = Dashboard(
        Bus(adapter),
        topics=parse_subscriptions(["orders=shop"]),
        sources=[MetricsSource(metrics.url), MetricsSource("http://127.0.0.1:9/")],
    )
    server = DashboardServer(board).start()
    yield server, adapter, metrics
    server.close()
    metrics.close()
    adapter.close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: object) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_state_reports_backlog_rates_and_unreachable_sources(
    served: tuple[DashboardServer, DurableBus, _Metrics],
) -> None:
    """/api/state: backlog from backlog_stats, rates from --metrics, an error per dead endpoint."""
    server, adapter, metrics = served
    adapter.publish("shop", [new_event("com.example.order", "/shop", {"n": i}) for i in range(4)])
    metrics.acked = 50
    state = _get(server.url + "api/state")
    [row] = state["subscriptions"]
    assert row["name"] == "orders" and row["topic"] == "shop"
    assert row["backlog"]["undelivered"] == 4 and row["backlog"]["dead_letters"] == 0
    assert row["rates"]["totals"]["acked"] == 50
    assert state["backlog_supported"] is True
    assert state["sources"][0]["error"] is None and state["sources"][1]["error"]


def test_requeue_and_purge_endpoints_settle_dead_letters(
    served: tuple[DashboardServer, DurableBus, _Metrics],
) -> None:
    """POST requeue republishes then removes; purge removes; bad bodies are 400s."""
    server, adapter, _ = served
    events = [new_event("com.example.order", "/shop", {"n": i}) for i in range(2)]
    adapter.publish("shop", events)
    for delivery in receive_n(adapter, "orders", 2):
        delivery.dead_letter("bad")
    assert [d["id"] for d in _get(server.url + "api/dlq?subscription=orders")] == [
        e.get_id() for e in events
    ]
    shown = _get(server.url + f"api/dlq/show?subscription=orders&id={events[0].get_id()}")
    assert shown["event"]["data"] == {"n": 0} and shown["reason"] == "bad"
    status, done = _post(
        server.url + "api/dlq/requeue", {"subscription": "orders", "ids": [events[0].get_id()]}
    )
    assert status == 200 and done["done"] == [events[0].get_id()]
    [back] = receive_n(adapter, "orders", 1)
    assert back.event.get_id() == events[0].get_id()
    status, done = _post(server.url + "api/dlq/purge", {"subscription": "orders", "ids": None})
    assert status == 200 and done["done"] == [events[1].get_id()]
    assert _post(server.url + "api/dlq/purge", {"ids": None})[0] == 400


def test_dashboard_command_needs_something_to_show() -> None:
    """`polybus dashboard` with neither --subscription nor --metrics is a usage error."""
    result = CliRunner().invoke(cli, ["dashboard", "--port", "0"])
    assert result.exit_code == 2 and "--subscription" in result.output


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the dashboard's browser test needs Playwright's Python package")
    assert Path(CHROMIUM).exists(), "Debian's chromium is required"
    return sync_playwright


def _cell(page: Any, key: str) -> str:
    return str(page.text_content(f"tr[data-sub='orders'] td[data-k='{key}']"))


def test_the_page_moves_live_and_requeues_in_chromium(
    served: tuple[DashboardServer, DurableBus, _Metrics],
) -> None:
    """Offline, the numbers follow the bus and the metrics; a requeue from the page redelivers."""
    server, adapter, metrics = served
    outside: list[str] = []
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def only_local(route: Any) -> None:
                if route.request.url.startswith(server.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(server.url)
            page.wait_for_selector("tr[data-sub='orders']", timeout=10_000)
            assert _cell(page, "undelivered") == "0"

            adapter.publish(
                "shop", [new_event("com.example.order", "/shop", {"n": i}) for i in range(5)]
            )
            metrics.acked = 40
            page.wait_for_function(
                "document.querySelector(\"tr[data-sub='orders'] td[data-k='undelivered']\")"
                ".textContent === '5'",
                timeout=10_000,
            )
            polls = int(page.get_attribute("body", "data-polls") or 0)
            metrics.acked = 140
            page.wait_for_function(f"Number(document.body.dataset.polls) > {polls + 1}")
            assert (
                _cell(page, "throughput").endswith("/s") and _cell(page, "throughput") != "0.00/s"
            )
            assert _cell(page, "p50").endswith("ms")

            deliveries = receive_n(adapter, "orders", 5)
            target = deliveries[0].event.get_id()
            deliveries[0].dead_letter("schema mismatch")
            for delivery in deliveries[1:]:
                delivery.ack()
            page.wait_for_function(
                "document.querySelector(\"tr[data-sub='orders'] td[data-k='dead_letters']\")"
                ".textContent === '1'",
                timeout=10_000,
            )
            page.click("tr[data-sub='orders'] button.open-dlq")
            page.wait_for_selector("body[data-dlq-loaded='1']", timeout=10_000)
            assert page.text_content(f"#letters tr[data-id='{target}'] td[data-k='reason']") == (
                "schema mismatch"
            )
            page.click(f"#letters tr[data-id='{target}'] button.requeue")
            page.wait_for_selector(f"body[data-last-action='requeue:{target}']", timeout=10_000)
            [again] = receive_n(adapter, "orders", 1)
            assert again.event.get_id() == target
            again.ack()
        finally:
            browser.close()
    assert outside == []


class _NoBacklog:
    """A provider without the backlog capability: the five contract methods, nothing more."""

    name = "plain"

    def __init__(self, inner: DurableBus) -> None:
        self.inner = inner

    def publish(self, topic: str, events: Any) -> None:
        """Delegate."""
        self.inner.publish(topic, events)

    def provision(self, spec: SubscriptionSpec) -> Any:
        """Delegate."""
        return self.inner.provision(spec)

    def receive(self, subscription: str, max_events: int = 10, timeout: float = 1.0) -> Any:
        """Delegate."""
        return self.inner.receive(subscription, max_events, timeout)

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> Any:
        """Delegate."""
        return self.inner.receive_dead_letters(subscription, max_events, timeout)

    def delete_subscription(self, subscription: str) -> None:
        """Delegate."""
        self.inner.delete_subscription(subscription)

    def close(self) -> None:
        """Delegate."""
        self.inner.close()


def test_state_says_when_the_provider_reports_no_backlog(tmp_path: Path) -> None:
    """Without SupportsBacklog the row has no backlog and the page gets a note naming the adapter."""
    adapter = _NoBacklog(DurableBus(tmp_path / "bus.db"))
    try:
        state = Dashboard(Bus(adapter), topics={"orders": "shop"}).state()
        assert state["backlog_supported"] is False
        assert "plain adapter does not report backlog" in state["backlog_note"]
        assert state["subscriptions"][0]["backlog"] is None
    finally:
        adapter.close()
