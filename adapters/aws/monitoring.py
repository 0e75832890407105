"""The aws lag gauge's reading of CloudWatch: the oldest message's age of an SQS queue.

SQS has attributes for its counts (read in provisioning.py) but none for the
age of its oldest message: that is the CloudWatch metric
ApproximateAgeOfOldestMessage (namespace AWS/SQS, dimension QueueName), which
SQS sends once a minute. `OldestAge` reads its newest datapoint with
GetMetricData.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

AGE_METRIC = "ApproximateAgeOfOldestMessage"
AGE_LOOKBACK = 900  # seconds of metric history searched for the newest datapoint
AGE_CACHE = 60.0  # seconds a reading is reused: the metric has one value per minute
log = logging.getLogger("polybus.aws")


class OldestAge:
    """Reads (and caches for AGE_CACHE seconds) a queue's ApproximateAgeOfOldestMessage."""

    def __init__(self, cloudwatch_client: Any) -> None:
        self._cloudwatch = cloudwatch_client
        self._ages: dict[str, tuple[float, float | None]] = {}  # queue -> (read at, age)
        self._warned = False
        self._lock = threading.Lock()

    def read(self, queue: str) -> float | None:
        """The queue's newest ApproximateAgeOfOldestMessage datapoint (seconds), or None.

        None ("unavailable") when there is no CloudWatch client, when no
        datapoint exists in the last AGE_LOOKBACK seconds (a new queue, or an
        endpoint such as moto that has none), or when CloudWatch refuses
        (e.g. no cloudwatch:GetMetricData permission: logged once). A reading
        is reused for AGE_CACHE seconds: GetMetricData is billed per metric
        read, and the metric changes once a minute.
        """
        if self._cloudwatch is None:
            return None
        now = time.monotonic()
        cached = self._ages.get(queue)
        if cached is not None and now - cached[0] < AGE_CACHE:
            return cached[1]
        end = datetime.now(UTC)
        query = {
            "Id": "age",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": AGE_METRIC,
                    "Dimensions": [{"Name": "QueueName", "Value": queue}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
        try:
            result = self._cloudwatch.get_metric_data(
                MetricDataQueries=[query],
                StartTime=end - timedelta(seconds=AGE_LOOKBACK),
                EndTime=end,
                ScanBy="TimestampDescending",
            )
        except (ClientError, BotoCoreError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("oldest age unavailable: CloudWatch GetMetricData failed: %s", exc)
            age = None
        else:
            series = result.get("MetricDataResults") or [{}]
            points = sorted(
                zip(series[0].get("Timestamps", []), series[0].get("Values", []), strict=False),
                reverse=True,
            )
            age = float(points[0][1]) if points else None
        with self._lock:
            self._ages[queue] = (now, age)
        return age
