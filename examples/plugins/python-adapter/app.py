"""mailrelay: a belfry channel adapter written in Python.

Sends email as JSON to a mail relay's HTTP API (``POST {api_base}/v1/messages``) and turns the
relay's delivery webhooks, signed per Standard Webhooks, into belfry feedback.

Config (``--plugin-config mailrelay.KEY=VALUE`` or ``BELFRY_PLUGIN__MAILRELAY__KEY``):
``api_key`` and ``from`` (required), ``webhook_secret`` (``whsec_...``, required for
webhooks), ``api_base`` (default ``https://api.mailrelay.example``).

Built by ``belfry-build-py`` (sdk/python) for the ``channel-adapter`` world of
belfry:plugin@1.0.0. Module-level code runs once at build time (componentize-py snapshots the
initialised interpreter), so nothing here reads config or the clock outside a call.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.exports import delivery as d
from wit_world.imports import config, log, types

from belfry_plugin_sdk import SignatureError, field, verify_standard_webhook
from belfry_plugin_sdk.http import HttpError, post_json

DEFAULT_API_BASE = "https://api.mailrelay.example"

#: The relay's event types, and what each means to belfry. Others are left out, not errors.
EVENTS = {
    "message.accepted": d.FeedbackKind.ACCEPTED,
    "message.delivered": d.FeedbackKind.DELIVERED,
    "message.deferred": d.FeedbackKind.DEFERRED,
    "message.bounced": d.FeedbackKind.BOUNCED_HARD,
    "message.soft_bounced": d.FeedbackKind.BOUNCED_SOFT,
    "message.complained": d.FeedbackKind.COMPLAINED,
    "message.opened": d.FeedbackKind.OPENED,
    "message.clicked": d.FeedbackKind.CLICKED,
    "message.unsubscribed": d.FeedbackKind.UNSUBSCRIBED,
}


def required(key: str) -> str:
    value = config.get(key)
    if not value:
        raise Err(d.SendError_Permanent(f"config {key} is not set (mailrelay.{key})"))
    return value


class Delivery(wit_world.exports.Delivery):
    def send(self, message: d.Message) -> d.Receipt:
        content = message.content
        if not isinstance(content, types.Content_Email):
            raise Err(d.SendError_Permanent(f"mailrelay sends email only, not {type(content).__name__}"))
        if not message.recipient.email:
            raise Err(d.SendError_Permanent(f"recipient {message.recipient.id} has no email address"))
        email = content.value
        api_base = (config.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        body = {
            "from": required("from"),
            "to": message.recipient.email,
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            # The host's required headers (List-Unsubscribe ...), every one of them, in order.
            "headers": [[k, v] for k, v in message.headers],
            "tags": {"delivery_id": message.delivery_id, "tenant": message.tenant},
        }
        try:
            resp = post_json(f"{api_base}/v1/messages", body, [
                ("authorization", f"Bearer {required('api_key')}"),
                ("idempotency-key", message.idempotency_key),
            ])
        except HttpError as e:
            raise Err(d.SendError_Transient(f"mailrelay unreachable: {e}"))
        if resp.ok:
            try:
                return d.Receipt(provider_message_id=field(resp.json(), "id", str), metadata=[])
            except ValueError as e:
                raise Err(d.SendError_Transient(f"mailrelay answered {resp.status} without an id: {e}"))
        detail = resp.body[:200].decode("utf-8", "replace")
        if resp.status == 429:
            retry = resp.header("retry-after") or "30"
            secs = int(retry) if retry.isdigit() else 30
            raise Err(d.SendError_RateLimited(d.RateLimit(retry_after_ms=secs * 1000, message=detail)))
        if resp.status >= 500 or resp.status == 408:
            raise Err(d.SendError_Transient(f"mailrelay {resp.status}: {detail}"))
        raise Err(d.SendError_Permanent(f"mailrelay {resp.status}: {detail}"))

    def handle_webhook(self, request: d.WebhookRequest) -> list:
        secret = config.get("webhook_secret")
        if not secret:
            raise Err(d.WebhookError_Unauthorized("config webhook_secret is not set (mailrelay.webhook_secret)"))
        try:
            event_id = verify_standard_webhook(secret, request.headers, request.body, request.received_at_ms)
        except SignatureError as e:
            raise Err(d.WebhookError_Unauthorized(str(e)))
        try:
            event = json.loads(request.body)
            kind = EVENTS.get(field(event, "type", str))
            message_id = field(event, "data.message_id", str)
            occurred = field(event, "data.occurred_at_ms", int, optional=True)
            reason = field(event, "data.reason", str, optional=True)
        except ValueError as e:
            raise Err(d.WebhookError_Malformed(str(e)))
        if kind is None:
            log.log(log.Level.DEBUG, f"mailrelay: event type {event.get('type')!r} is not mapped")
            return []
        return [d.FeedbackEvent(kind=kind, provider_event_id=event_id, provider_message_id=message_id,
                                occurred_at_ms=occurred, reason=reason)]
