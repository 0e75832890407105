"""google.iam.v1.IAMPolicy for the emulator: one stored policy per resource.

Pub/Sub serves Get/Set/TestIamPermissions on topics, subscriptions, snapshots
and schemas. The emulator stores each resource's policy (version, bindings, an
etag that changes with every write), checks an etag given to SetIamPolicy
(ABORTED on a stale one, as read-modify-write clients expect), validates roles
and members, and forgets the policy when the resource is deleted. It has no
identities: TestIamPermissions grants every ``pubsub.*`` permission asked for.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable

import grpc
from google.iam.v1 import iam_policy_pb2, policy_pb2

from polybus.adapters.gcp.emulator.errors import RpcError

Policy = policy_pb2.Policy
_MEMBER = re.compile(
    r"allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|deleted:user|"
    r"deleted:serviceAccount|deleted:group|principal|principalSet):\S+"
)
_ROLE = re.compile(r"(roles|projects/[^/]+/roles|organizations/[^/]+/roles)/[A-Za-z0-9_.]+")


class PolicyStore:
    """IAM policies by resource name; `exists(name)` says whether a resource is there."""

    def __init__(self, exists: Callable[[str], bool]) -> None:
        self._exists = exists
        self._lock = threading.Lock()
        self._policies: dict[str, bytes] = {}

    def get(self, request: iam_policy_pb2.GetIamPolicyRequest) -> policy_pb2.Policy:
        """GetIamPolicy: the stored policy, or an empty one with its etag."""
        self._check(request.resource)
        with self._lock:
            stored = self._policies.get(request.resource)
        policy = Policy()
        if stored is not None:
            policy.ParseFromString(stored)
        else:
            policy.etag = _etag(b"")
        return policy

    def set(self, request: iam_policy_pb2.SetIamPolicyRequest) -> policy_pb2.Policy:
        """SetIamPolicy: validate, compare the etag when one is given, store, return."""
        self._check(request.resource)
        new = request.policy
        paths = set(request.update_mask.paths) if request.HasField("update_mask") else set()
        unknown = paths - {"bindings", "etag", "audit_configs"}
        if unknown:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid update_mask path: {sorted(unknown)[0]}"
            )
        _validate(new)
        with self._lock:
            stored = self._policies.get(request.resource, b"")
            if new.etag and new.etag != _etag(stored):
                raise RpcError(
                    grpc.StatusCode.ABORTED,
                    "There were concurrent policy changes. Please retry the whole "
                    "read-modify-write with exponential backoff.",
                )
            policy = Policy()
            policy.CopyFrom(new)
            policy.version = max(1, new.version)
            policy.ClearField("etag")
            body = policy.SerializeToString(deterministic=True)
            policy.etag = _etag(body)
            self._policies[request.resource] = body
        return policy

    def test(
        self, request: iam_policy_pb2.TestIamPermissionsRequest
    ) -> iam_policy_pb2.TestIamPermissionsResponse:
        """TestIamPermissions: the emulator has no identities, so every pubsub.* permission."""
        self._check(request.resource)
        for permission in request.permissions:
            if not permission.startswith("pubsub.") or "." not in permission[7:]:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Permission {permission} is not valid for a Pub/Sub resource",
                )
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=list(request.permissions))

    def forget(self, resource: str) -> None:
        """Drop a deleted resource's policy."""
        with self._lock:
            self._policies.pop(resource, None)

    def _check(self, resource: str) -> None:
        if not resource:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "resource is required")
        if not self._exists(resource):
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={resource}).")


def _validate(policy: policy_pb2.Policy) -> None:
    for binding in policy.bindings:
        if not _ROLE.fullmatch(binding.role):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Role {binding.role!r} is not a valid role name (expected roles/NAME)",
            )
        if not binding.members:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Binding for {binding.role} has no members"
            )
        for member in binding.members:
            if not _MEMBER.fullmatch(member):
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid member {member!r}: expected user:, serviceAccount:, group:, "
                    "domain:, allUsers or allAuthenticatedUsers",
                )


def _etag(body: bytes) -> bytes:
    return b"BwY" + hashlib.sha256(body).digest()[:6]
