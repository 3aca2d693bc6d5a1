"""belfry_plugin_sdk: helpers for belfry plugins written in Python (contract belfry:plugin@1).

The contract itself comes as typed bindings that componentize-py generates (``wit_world``;
``belfry-build-py bindings`` writes them out for editors and type checkers). This package adds:

- :mod:`belfry_plugin_sdk.payload`: payload access whose errors name the field;
- :mod:`belfry_plugin_sdk.signatures`: HMAC-SHA256 and Standard Webhooks verification,
  constant-time, with the timestamp checked against the host's ``received_at_ms``;
- :mod:`belfry_plugin_sdk.http`: an HTTP client over ``wasi:http`` for channel adapters;
- :mod:`belfry_plugin_sdk.build`: the ``belfry-build-py`` command.
"""

from .payload import PayloadError, field, optional_field, parse_payload
from .signatures import (
    TOLERANCE_MS,
    SignatureError,
    check_timestamp,
    constant_time_equal,
    header,
    hmac_sha256,
    verify_hmac_sha256_hex,
    verify_standard_webhook,
    verify_timestamped_hmac,
)

__all__ = [
    "PayloadError", "field", "optional_field", "parse_payload",
    "TOLERANCE_MS", "SignatureError", "check_timestamp", "constant_time_equal", "header",
    "hmac_sha256", "verify_hmac_sha256_hex", "verify_standard_webhook", "verify_timestamped_hmac",
]
