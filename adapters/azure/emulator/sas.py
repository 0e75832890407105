"""Event Grid credentials as the emulator checks them: access keys and SAS tokens.

A SAS token is ``r=<urlenc resource>&e=<urlenc expiry>&s=<urlenc signature>``
where the signature is base64(HMAC-SHA256(base64decode(key), "r=...&e=...")),
exactly as azure.eventgrid.generate_sas builds it. The emulator checks the
signature, the expiry and that the resource names the requested path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

#: The key `polybus emulate azure` uses unless given ``--key``: stable across restarts so a
#: pasted polybus.toml keeps working. Public on purpose; it guards nothing but the emulator.
DEFAULT_EMULATOR_KEY = base64.b64encode(b"polybus-emulator-key-not-secret!").decode("ascii")


def new_key() -> str:
    """A random access key in Event Grid's form (base64 of 32 bytes)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def keys_match(given: str, key: str) -> bool:
    """Constant-time comparison of an access key."""
    return hmac.compare_digest(given.encode(), key.encode())


def sign(key: str, message: str) -> str:
    """base64 HMAC-SHA256 of `message` with the base64-decoded `key`."""
    digest = hmac.new(base64.b64decode(key), message.encode("ascii"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def check_sas_token(token: str, key: str, path: str, now: datetime | None = None) -> str | None:
    """None when `token` is valid for `path`, else the reason it is refused."""
    unsigned, sep, signature = token.rpartition("&s=")
    if not sep:
        return "token has no signature"
    fields = dict(part.partition("=")[::2] for part in unsigned.split("&"))
    if "r" not in fields or "e" not in fields:
        return "token needs r= and e="
    try:
        expected = sign(key, unsigned)
    except (binascii.Error, ValueError):
        return "emulator key is not base64"
    if not hmac.compare_digest(unquote(signature).encode(), expected.encode()):
        return "signature does not match"
    expiry = parse_expiry(unquote(fields["e"]))
    if expiry is None:
        return f"unreadable expiry {unquote(fields['e'])!r}"
    if expiry <= (now or datetime.now(UTC)):
        return "token expired"
    resource_path = urlsplit(unquote(fields["r"])).path.rstrip("/").lower()
    if resource_path != path.rstrip("/").lower():
        return f"token is for {resource_path!r}, not {path!r}"
    return None


def parse_expiry(text: str) -> datetime | None:
    """The expiry of a token: str(datetime) as the SDK writes it, or Azure's US format."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
