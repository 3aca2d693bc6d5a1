"""Verifying signed provider webhooks over the raw body, with ``hmac``/``hashlib``.

Every comparison is constant-time (``hmac.compare_digest``), and timestamps are checked
against the host's ``received_at_ms`` (when belfry received the request), never the guest's
clock, with the contract's tolerance of 5 minutes either way.

Standard Webhooks (https://www.standardwebhooks.com) headers are ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` (Svix sends the same prefixed ``svix-``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Iterable, Optional, Tuple, Union

TOLERANCE_MS = 5 * 60 * 1000

Bytes = Union[bytes, bytearray, str]


class SignatureError(Exception):
    """Why a webhook is not authentic; maps to the contract's ``unauthorized``."""


def _b(v: Bytes) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


def constant_time_equal(a: Bytes, b: Bytes) -> bool:
    return hmac.compare_digest(_b(a), _b(b))


def hmac_sha256(key: Bytes, message: Bytes) -> bytes:
    return hmac.new(_b(key), _b(message), hashlib.sha256).digest()


def header(headers: Iterable[Tuple[str, str]], name: str) -> Optional[str]:
    """The first value of header ``name`` (case-insensitive) in the contract's header list."""
    want = name.lower()
    for k, v in headers:
        if k.lower() == want:
            return v
    return None


def check_timestamp(timestamp_ms: int, received_at_ms: int, tolerance_ms: int = TOLERANCE_MS) -> None:
    """Raises SignatureError unless ``timestamp_ms`` is within the tolerance of ``received_at_ms``."""
    skew = abs(received_at_ms - timestamp_ms)
    if skew > tolerance_ms:
        raise SignatureError(
            f"timestamp is {skew // 1000} s from the time received, over the {tolerance_ms // 1000} s tolerance")


def verify_hmac_sha256_hex(secret: Bytes, body: Bytes, signature_hex: Optional[str]) -> None:
    """Raises SignatureError unless ``signature_hex`` is HMAC-SHA256(secret, body), hex, any case."""
    if not signature_hex:
        raise SignatureError("no signature")
    expected = hmac_sha256(secret, body).hex()
    if not constant_time_equal(expected, signature_hex.strip().lower()):
        raise SignatureError("signature does not match")


def verify_timestamped_hmac(secret: Bytes, signature_header: Optional[str], body: Bytes,
                            received_at_ms: int, tolerance_ms: int = TOLERANCE_MS) -> int:
    """A ``t=SECONDS,v1=HEX`` header (Stripe's shape): HMAC-SHA256 over ``"{t}." + body``.

    Returns the timestamp (seconds); raises SignatureError otherwise.
    """
    if not signature_header:
        raise SignatureError("no signature header")
    parts = {}
    for item in signature_header.split(","):
        k, _, v = item.strip().partition("=")
        parts.setdefault(k, []).append(v)
    ts = (parts.get("t") or [""])[0]
    if not ts.isdigit():
        raise SignatureError("signature header has no t=SECONDS")
    check_timestamp(int(ts) * 1000, received_at_ms, tolerance_ms)
    expected = hmac_sha256(secret, _b(ts) + b"." + _b(body)).hex()
    if not any(constant_time_equal(expected, v.lower()) for v in parts.get("v1", [])):
        raise SignatureError("no v1 signature matches")
    return int(ts)


def verify_standard_webhook(secret: str, headers: Iterable[Tuple[str, str]], body: Bytes,
                            received_at_ms: int, tolerance_ms: int = TOLERANCE_MS) -> str:
    """Verifies a Standard Webhooks request; ``secret`` is ``whsec_`` + base64.

    Returns the message id (the provider's event id, to deduplicate by); raises SignatureError
    when the request is not authentic or too old.
    """
    headers = list(headers)

    def get(n: str) -> Optional[str]:
        return header(headers, f"webhook-{n}") or header(headers, f"svix-{n}")

    msg_id, ts, sigs = get("id"), get("timestamp"), get("signature")
    if not msg_id or not ts or not sigs:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not ts.isdigit() or len(ts) > 12:
        raise SignatureError("webhook-timestamp is not a number of seconds")
    check_timestamp(int(ts) * 1000, received_at_ms, tolerance_ms)
    try:
        key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret,
                               validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the configured secret is not whsec_ + base64") from None
    signed = f"{msg_id}.{ts}.".encode() + _b(body)
    expected = base64.b64encode(hmac_sha256(key, signed)).decode()
    for sig in sigs.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and constant_time_equal(value, expected):
            return msg_id
    raise SignatureError("no v1 signature matches")
