"""A local Google Pub/Sub emulator that the real google-cloud-pubsub client talks to.

Google's emulator ships with gcloud and cannot be installed here, so polybus
brings its own: a gRPC server implementing the google.pubsub.v1 Publisher and
Subscriber services the adapter and ordinary user code use (topics,
publishing, subscriptions with filter / ordering / retry / dead-letter /
retention, Pull, StreamingPull, Acknowledge, ModifyAckDeadline, Seek to a
time). The client reaches it through ``PUBSUB_EMULATOR_HOST``::

    with start() as emulator:           # polybus.adapters.gcp.emulator.start
        os.environ.update(emulator.environment())
        publisher = pubsub_v1.PublisherClient()

There are no servicer classes in the client package: the services are
registered as generic handlers with the protobuf classes behind the proto-plus
types as (de)serialisers. docs/gcp.md lists coverage and deviations.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import any_pb2, empty_pb2
from google.pubsub_v1.types import pubsub as types
from google.pubsub_v1.types import schema as schema_types
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from polybus.adapters.gcp.emulator.backend import Backend, RpcError
from polybus.adapters.gcp.emulator.monitoring import MonitoringServer
from polybus.adapters.gcp.emulator.subscription import MAX_BATCH_MESSAGES, StreamLimits

_EMPTY = empty_pb2.Empty()
_STREAM_IDLE_WAIT = 5.0  # seconds a stream sleeps when nothing is due
_MAX_PULL_WAIT = 10.0  # seconds a Pull without return_immediately waits for messages
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PROJECT = "polybus-local"  # the adapter's default project
ADMIN_SERVICE = "polybus.emulator.Admin"  # polybus-only calls; the gcp adapter names it too

StreamingPullResponse = types.StreamingPullResponse.pb()
PullResponse = types.PullResponse.pb()


def _pb(message_type: Any) -> Any:
    """The raw protobuf class behind a proto-plus type (raw classes pass through)."""
    return message_type.pb() if hasattr(message_type, "pb") else message_type


class GcpEmulator:
    """A running emulator (a core.emulation.RunningEmulator); stop() ends it.

    `endpoint` is ``host:port``, the PUBSUB_EMULATOR_HOST value; `backend` is
    its state, for tests; `monitoring` serves Cloud Monitoring's
    timeSeries.list for Pub/Sub's gauges (monitoring.py) at
    `monitoring_endpoint`. A context manager that stops on exit.
    """

    def __init__(
        self,
        server: grpc.Server,
        host: str,
        port: int,
        backend: Backend,
        project: str,
        monitoring: MonitoringServer | None = None,
    ) -> None:
        self._server = server
        self.monitoring = monitoring
        self.host = host
        self.port = port
        self.backend = backend
        self.project = project
        self._stopped = False

    @property
    def endpoint(self) -> str:
        """``host:port`` (gRPC, no scheme): what PUBSUB_EMULATOR_HOST and emulator_host take."""
        return f"{self.host}:{self.port}"

    @property
    def monitoring_endpoint(self) -> str | None:
        """``http://host:port`` of the Cloud Monitoring stand-in (gcp.monitoring_endpoint)."""
        return None if self.monitoring is None else self.monitoring.endpoint

    def settings(self) -> dict[str, Any]:
        """The ``[gcp]`` table that points the adapter here."""
        return {"project": self.project, "emulator_host": self.endpoint}

    def optional_settings(self) -> dict[str, Any]:
        """``[gcp]`` keys it serves but leaves off: printed commented by `polybus emulate`."""
        return {} if self.monitoring is None else {"monitoring_endpoint": self.monitoring.endpoint}

    def environment(self) -> dict[str, str]:
        """What google-cloud-pubsub's own clients read to find an emulator."""
        return {"PUBSUB_EMULATOR_HOST": self.endpoint}

    def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving (idempotent); open streams are cancelled after `grace` seconds."""
        if self._stopped:
            return
        self._stopped = True
        if self.monitoring is not None:
            self.monitoring.stop()
        self._server.stop(grace).wait()

    def __enter__(self) -> GcpEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"GcpEmulator({self.endpoint!r})"


def start_server(
    host: str = "127.0.0.1", port: int = 0, project: str = PROJECT, max_workers: int = 64
) -> GcpEmulator:
    """Start an emulator on `host:port` (0 picks a free port) and return it running.

    Each open StreamingPull holds one of `max_workers` server threads. The
    Cloud Monitoring stand-in listens on its own free port of `host`.
    `project` only names the project in `settings()`: any project is served.
    """
    backend = Backend()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pubsub-emulator"),
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    services = _Services(backend)
    server.add_generic_rpc_handlers(services.handlers())
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    monitoring = MonitoringServer(backend, host)
    return GcpEmulator(server, host, bound, backend, project, monitoring)


def _unary(
    call: Callable[[Any, grpc.ServicerContext], Any], request: Any, response: Any
) -> grpc.RpcMethodHandler:
    def handle(req: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(req, context)
        except RpcError as exc:
            context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=_pb(request).FromString,
        response_serializer=_pb(response).SerializeToString,
    )


def _page(names: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    start = int(page_token) if page_token.isdigit() else 0
    size = page_size if page_size > 0 else 100
    end = start + size
    return names[start:end], (str(end) if end < len(names) else "")


class _Services:
    """The google.pubsub.v1 Publisher and Subscriber methods over one Backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        t = types
        publisher = {
            "CreateTopic": _unary(self.create_topic, t.Topic, t.Topic),
            "GetTopic": _unary(self.get_topic, t.GetTopicRequest, t.Topic),
            "Publish": _unary(self.publish, t.PublishRequest, t.PublishResponse),
            "ListTopics": _unary(self.list_topics, t.ListTopicsRequest, t.ListTopicsResponse),
            "ListTopicSubscriptions": _unary(
                self.list_topic_subscriptions,
                t.ListTopicSubscriptionsRequest,
                t.ListTopicSubscriptionsResponse,
            ),
            "DeleteTopic": _unary(self.delete_topic, t.DeleteTopicRequest, empty_pb2.Empty),
        }
        subscriber = {
            "CreateSubscription": _unary(self.create_subscription, t.Subscription, t.Subscription),
            "GetSubscription": _unary(
                self.get_subscription, t.GetSubscriptionRequest, t.Subscription
            ),
            "UpdateSubscription": _unary(
                self.update_subscription, t.UpdateSubscriptionRequest, t.Subscription
            ),
            "ListSubscriptions": _unary(
                self.list_subscriptions, t.ListSubscriptionsRequest, t.ListSubscriptionsResponse
            ),
            "DeleteSubscription": _unary(
                self.delete_subscription, t.DeleteSubscriptionRequest, empty_pb2.Empty
            ),
            "Pull": _unary(self.pull, t.PullRequest, t.PullResponse),
            "Acknowledge": _unary(self.acknowledge, t.AcknowledgeRequest, empty_pb2.Empty),
            "ModifyAckDeadline": _unary(
                self.modify_ack_deadline, t.ModifyAckDeadlineRequest, empty_pb2.Empty
            ),
            "Seek": _unary(self.seek, t.SeekRequest, t.SeekResponse),
            "CreateSnapshot": _unary(self.create_snapshot, t.CreateSnapshotRequest, t.Snapshot),
            "GetSnapshot": _unary(self.get_snapshot, t.GetSnapshotRequest, t.Snapshot),
            "ListSnapshots": _unary(
                self.list_snapshots, t.ListSnapshotsRequest, t.ListSnapshotsResponse
            ),
            "UpdateSnapshot": _unary(self.update_snapshot, t.UpdateSnapshotRequest, t.Snapshot),
            "DeleteSnapshot": _unary(
                self.delete_snapshot, t.DeleteSnapshotRequest, empty_pb2.Empty
            ),
            "StreamingPull": grpc.stream_stream_rpc_method_handler(
                self.streaming_pull,
                request_deserializer=_pb(t.StreamingPullRequest).FromString,
                response_serializer=StreamingPullResponse.SerializeToString,
            ),
        }
        admin = {  # polybus-only, not Pub/Sub: the adapter calls it only with emulator_host set
            "Backlog": grpc.unary_unary_rpc_method_handler(
                self.backlog,
                request_deserializer=lambda raw: raw.decode("utf-8"),
                response_serializer=lambda doc: json.dumps(doc).encode("utf-8"),
            ),
        }
        iam = self.backend.iam
        policies = {
            "GetIamPolicy": _unary(
                lambda r, c: iam.get(r), iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy
            ),
            "SetIamPolicy": _unary(
                lambda r, c: iam.set(r), iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy
            ),
            "TestIamPermissions": _unary(
                lambda r, c: iam.test(r),
                iam_policy_pb2.TestIamPermissionsRequest,
                iam_policy_pb2.TestIamPermissionsResponse,
            ),
        }
        return (
            grpc.method_handlers_generic_handler(ADMIN_SERVICE, admin),
            grpc.method_handlers_generic_handler("google.iam.v1.IAMPolicy", policies),
            grpc.method_handlers_generic_handler(
                "google.pubsub.v1.SchemaService", _schema_handlers(self.backend)
            ),
            grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
            grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber),
        )

    def backlog(self, name: str, context: grpc.ServicerContext) -> dict[str, Any]:
        """A subscription's backlog figures (the emulator's stand-in for Cloud Monitoring)."""
        try:
            sub = self.backend.subscription(name)
        except RpcError as exc:
            context.abort(exc.code, exc.message)
        with sub.cond:
            return sub.backlog()

    # -- Publisher ----------------------------------------------------------------

    def create_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.create_topic(request)

    def get_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.get_topic(request.topic)

    def publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        ids = self.backend.publish(request.topic, request.messages)
        return _pb(types.PublishResponse)(message_ids=ids)

    def list_topics(self, request: Any, context: grpc.ServicerContext) -> Any:
        names = self.backend.list_topics(request.project)
        page, token = _page(names, request.page_size, request.page_token)
        response = _pb(types.ListTopicsResponse)(next_page_token=token)
        for name in page:
            response.topics.append(self.backend.get_topic(name))
        return response

    def list_topic_subscriptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        names = self.backend.list_topic_subscriptions(request.topic)
        page, token = _page(names, request.page_size, request.page_token)
        return _pb(types.ListTopicSubscriptionsResponse)(subscriptions=page, next_page_token=token)

    def delete_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.backend.delete_topic(request.topic)
        return _EMPTY

    # -- Subscriber: administration -------------------------------------------------

    def create_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.create_subscription(request)

    def get_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        sub = self.backend.subscription(request.subscription)
        with sub.cond:
            return sub.config

    def update_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.update_subscription(request.subscription, request.update_mask.paths)

    def list_subscriptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        names = self.backend.list_subscriptions(request.project)
        page, token = _page(names, request.page_size, request.page_token)
        response = _pb(types.ListSubscriptionsResponse)(next_page_token=token)
        for name in page:
            sub = self.backend.subscription(name)
            with sub.cond:
                response.subscriptions.append(sub.config)
        return response

    def delete_subscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.backend.delete_subscription(request.subscription)
        return _EMPTY

    def seek(self, request: Any, context: grpc.ServicerContext) -> Any:
        sub = self.backend.subscription(request.subscription)
        if request.snapshot:
            self.backend.seek_snapshot(request.subscription, request.snapshot)
            return _pb(types.SeekResponse)()
        if not request.HasField("time"):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "Seek needs a time or a snapshot")
        with sub.cond:
            sub.seek(request.time.seconds + request.time.nanos / 1e9)
        return _pb(types.SeekResponse)()

    def create_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.create_snapshot(request)

    def get_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.snapshot(request.snapshot).config

    def list_snapshots(self, request: Any, context: grpc.ServicerContext) -> Any:
        names = self.backend.list_snapshots(request.project)
        page, token = _page(names, request.page_size, request.page_token)
        response = _pb(types.ListSnapshotsResponse)(next_page_token=token)
        for name in page:
            response.snapshots.append(self.backend.snapshot(name).config)
        return response

    def update_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.backend.update_snapshot(request.snapshot, request.update_mask.paths)

    def delete_snapshot(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.backend.delete_snapshot(request.snapshot)
        return _EMPTY

    # -- Subscriber: delivery ---------------------------------------------------------

    def acknowledge(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.ack_ids:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "No ack ids specified")
        sub = self.backend.subscription(request.subscription)
        with sub.cond:
            if sub.rules.exactly_once:
                sub.maintain(time.monotonic(), time.time())  # an expired lease's ack id is invalid
            invalid = sub.ack(request.ack_ids)
        if invalid and sub.rules.exactly_once:
            _abort_invalid_ack_ids(context, invalid)
        return _EMPTY

    def modify_ack_deadline(self, request: Any, context: grpc.ServicerContext) -> Any:
        seconds = request.ack_deadline_seconds
        if not 0 <= seconds <= 600:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid ack deadline given: {seconds}; it must be between 0 and 600 seconds",
            )
        if not request.ack_ids:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "No ack ids specified")
        sub = self.backend.subscription(request.subscription)
        with sub.cond:
            if sub.rules.exactly_once:
                sub.maintain(time.monotonic(), time.time())
            invalid = sub.modify(request.ack_ids, seconds, time.monotonic())
        self.backend.forward_dead_letters(sub)
        if invalid and sub.rules.exactly_once:
            _abort_invalid_ack_ids(context, invalid)
        return _EMPTY

    def pull(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.max_messages <= 0:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be positive")
        sub = self.backend.subscription(request.subscription)
        remaining = context.time_remaining()
        wait = 0.0 if request.return_immediately else _MAX_PULL_WAIT
        if remaining is not None:
            wait = max(0.0, min(wait, remaining - 0.1))
        give_up = time.monotonic() + wait
        with sub.cond:
            while True:
                if sub.deleted:
                    raise RpcError(grpc.StatusCode.NOT_FOUND, "Subscription does not exist")
                now = time.monotonic()
                batch = sub.take(now, time.time(), request.max_messages)
                if batch or now >= give_up or not context.is_active():
                    break
                nxt = sub.next_wakeup(now)
                sub.cond.wait(min(give_up - now, nxt if nxt is not None else give_up - now) + 1e-3)
        self.backend.forward_dead_letters(sub)
        response = PullResponse()
        _fill(response.received_messages, batch)
        return response

    def streaming_pull(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        try:
            first = next(requests)
        except StopIteration:
            return
        try:
            sub, limits = self._open_stream(first)
        except RpcError as exc:
            context.abort(exc.code, exc.message)
        reader = threading.Thread(
            target=self._read_stream, args=(requests, sub, limits), daemon=True
        )
        context.add_callback(lambda: _close_stream(sub, limits))
        reader.start()
        backend = self.backend
        while True:
            with sub.cond:
                while True:
                    if limits.closed:
                        return
                    if sub.deleted:
                        context.abort(grpc.StatusCode.NOT_FOUND, "Subscription does not exist")
                    now = time.monotonic()
                    batch = sub.take(now, time.time(), MAX_BATCH_MESSAGES, limits)
                    if batch:
                        break
                    nxt = sub.next_wakeup(now)
                    idle = _STREAM_IDLE_WAIT if nxt is None else min(nxt, _STREAM_IDLE_WAIT)
                    sub.cond.wait(max(1e-3, idle))
                ordered = sub.rules.ordered
                exactly_once = sub.rules.exactly_once
            backend.forward_dead_letters(sub)
            response = StreamingPullResponse()
            response.subscription_properties.message_ordering_enabled = ordered
            response.subscription_properties.exactly_once_delivery_enabled = exactly_once
            _fill(response.received_messages, batch)
            yield response

    def _open_stream(self, first: Any) -> tuple[Any, StreamLimits]:
        if not first.subscription:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "The first request must name a subscription"
            )
        deadline = first.stream_ack_deadline_seconds
        if not 10 <= deadline <= 600:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid stream_ack_deadline_seconds: {deadline}; it must be 10-600",
            )
        sub = self.backend.subscription(first.subscription)
        limits = StreamLimits(
            first.max_outstanding_messages, first.max_outstanding_bytes, float(deadline)
        )
        self._apply(sub, limits, first)
        return sub, limits

    def _read_stream(self, requests: Iterator[Any], sub: Any, limits: StreamLimits) -> None:
        """Apply acks, modacks and deadline changes that arrive on the stream."""
        try:
            for request in requests:
                self._apply(sub, limits, request)
        except (grpc.RpcError, RpcError, ValueError):
            pass  # the call ended or sent something invalid: the stream is over
        finally:
            _close_stream(sub, limits)

    def _apply(self, sub: Any, limits: StreamLimits, request: Any) -> None:
        acks, modacks = request.ack_ids, request.modify_deadline_ack_ids
        if not (acks or modacks or request.stream_ack_deadline_seconds):
            return  # a heartbeat
        if len(request.modify_deadline_ack_ids) != len(request.modify_deadline_seconds):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "modify_deadline_seconds and modify_deadline_ack_ids must be the same length",
            )
        now = time.monotonic()
        with sub.cond:
            if request.stream_ack_deadline_seconds:
                limits.ack_deadline = float(request.stream_ack_deadline_seconds)
            if request.ack_ids:
                sub.ack(request.ack_ids)
            by_seconds: dict[int, list[str]] = {}
            for ack_id, seconds in zip(
                request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=True
            ):
                by_seconds.setdefault(seconds, []).append(ack_id)
            for seconds, ack_ids in by_seconds.items():
                sub.modify(ack_ids, max(0, min(600, seconds)), now)
        self.backend.forward_dead_letters(sub)


def _close_stream(sub: Any, limits: StreamLimits) -> None:
    with sub.cond:
        limits.closed = True
        sub.cond.notify_all()


def _fill(received: Any, batch: list[tuple[str, Any, int]]) -> None:
    for ack_id, msg, attempt in batch:
        item = received.add(ack_id=ack_id, delivery_attempt=attempt)
        item.message.CopyFrom(msg)


def _abort_invalid_ack_ids(context: grpc.ServicerContext, ack_ids: list[str]) -> None:
    """Exactly-once delivery: report each invalid ack id the way Pub/Sub does (ErrorInfo)."""
    info = error_details_pb2.ErrorInfo(
        reason="EXACTLY_ONCE_ACKID_FAILURE",
        domain="pubsub.googleapis.com",
        metadata=dict.fromkeys(ack_ids, "PERMANENT_FAILURE_INVALID_ACK_ID"),
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
        message=f"{len(ack_ids)} ack id(s) are invalid: their lease expired or they were acked",
        details=[detail],
    )
    context.abort_with_status(rpc_status.to_status(status))


def _schema_handlers(backend: Backend) -> dict[str, grpc.RpcMethodHandler]:
    """google.pubsub.v1.SchemaService over the backend's registry."""
    t = schema_types
    schemas = backend.schemas

    def list_schemas(request: Any, context: grpc.ServicerContext) -> Any:
        found = schemas.list_schemas(request.parent, request.view)
        names = [m.name for m in found]
        page, token = _page(names, request.page_size, request.page_token)
        chosen = [m for m in found if m.name in set(page)]
        return _pb(t.ListSchemasResponse)(schemas=chosen, next_page_token=token)

    def list_revisions(request: Any, context: grpc.ServicerContext) -> Any:
        found = schemas.list_revisions(request.name, request.view)
        keys = [str(i) for i in range(len(found))]
        page, token = _page(keys, request.page_size, request.page_token)
        chosen = [found[int(k)] for k in page]
        return _pb(t.ListSchemaRevisionsResponse)(schemas=chosen, next_page_token=token)

    def delete(request: Any, context: grpc.ServicerContext) -> Any:
        schemas.delete(request.name)
        backend.iam.forget(request.name)
        return _EMPTY

    def validate_schema(request: Any, context: grpc.ServicerContext) -> Any:
        schemas.validate_schema(request.schema)
        return _pb(t.ValidateSchemaResponse)()

    def validate_message(request: Any, context: grpc.ServicerContext) -> Any:
        schemas.validate_message(request)
        return _pb(t.ValidateMessageResponse)()

    return {
        "CreateSchema": _unary(lambda r, c: schemas.create(r), t.CreateSchemaRequest, t.Schema),
        "GetSchema": _unary(lambda r, c: schemas.get(r), t.GetSchemaRequest, t.Schema),
        "ListSchemas": _unary(list_schemas, t.ListSchemasRequest, t.ListSchemasResponse),
        "ListSchemaRevisions": _unary(
            list_revisions, t.ListSchemaRevisionsRequest, t.ListSchemaRevisionsResponse
        ),
        "CommitSchema": _unary(lambda r, c: schemas.commit(r), t.CommitSchemaRequest, t.Schema),
        "RollbackSchema": _unary(
            lambda r, c: schemas.rollback(r), t.RollbackSchemaRequest, t.Schema
        ),
        "DeleteSchemaRevision": _unary(
            lambda r, c: schemas.delete_revision(r), t.DeleteSchemaRevisionRequest, t.Schema
        ),
        "DeleteSchema": _unary(delete, t.DeleteSchemaRequest, empty_pb2.Empty),
        "ValidateSchema": _unary(
            validate_schema, t.ValidateSchemaRequest, t.ValidateSchemaResponse
        ),
        "ValidateMessage": _unary(
            validate_message, t.ValidateMessageRequest, t.ValidateMessageResponse
        ),
    }
