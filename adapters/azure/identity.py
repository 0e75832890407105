"""Credentials for Event Grid: an access key, or Entra ID through DefaultAzureCredential.

``credential = "default"`` uses azure-identity's DefaultAzureCredential
(environment, workload or managed identity, Azure CLI, ...) for the data plane
and ARM alike, so no key is ever written down. azure-core sends bearer tokens
only over https; for the emulator (plain http on loopback) `bearer_policy`
lifts that rule for loopback endpoints only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import BearerTokenCredentialPolicy

from polybus.adapters.azure.config import AzureConfig
from polybus.core.extras import Requirement

EVENTGRID_SCOPE = "https://eventgrid.azure.net/.default"
IDENTITY = Requirement("Entra ID credentials (credential = 'default')", ("azure.identity",), "azure")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_credential(config: AzureConfig) -> Any:
    """The data-plane credential the configuration asks for."""
    if config.credential == "key":
        return AzureKeyCredential(config.key)
    return token_credential()


def token_credential() -> Any:
    """Entra ID through DefaultAzureCredential (what ARM always needs)."""
    IDENTITY.check()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def is_loopback_http(url: str) -> bool:
    """Whether `url` is plain http on this machine (the emulator)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK


class LoopbackBearerPolicy(BearerTokenCredentialPolicy):
    """A bearer-token policy that also sends the token over http, to loopback only."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        """Allow http for loopback URLs, then authorize as usual."""
        if is_loopback_http(request.http_request.url):
            request.context.options["enforce_https"] = False
        super().on_request(request)


def client_options(config: AzureConfig, credential: Any) -> dict[str, Any]:
    """Extra keyword arguments for the SDK clients: the loopback bearer policy where needed."""
    if isinstance(credential, AzureKeyCredential) or not is_loopback_http(config.endpoint):
        return {}
    return {"authentication_policy": LoopbackBearerPolicy(credential, EVENTGRID_SCOPE)}
