"""The Python SDK's pure helpers, on the host's Python (no component needed):
python3 -m unittest discover -s sdk/python/tests"""

import base64
import hashlib
import hmac
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from belfry_plugin_sdk import (  # noqa: E402
    PayloadError, SignatureError, field, parse_payload, verify_hmac_sha256_hex,
    verify_standard_webhook, verify_timestamped_hmac,
)

# The worked example of the Standard Webhooks specification.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"test": 2432232314}'
HEADERS = [("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("webhook-timestamp", "1614265330"),
           ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]
RECEIVED = 1614265330_000 + 2_000


class StandardWebhooks(unittest.TestCase):
    def test_the_spec_example_verifies(self):
        self.assertEqual(verify_standard_webhook(SECRET, HEADERS, BODY, RECEIVED), "msg_p5jXN8AQM9LWM0D4loKWxJek")

    def test_svix_prefixed_headers_verify(self):
        svix = [(k.replace("webhook-", "svix-"), v) for k, v in HEADERS]
        verify_standard_webhook(SECRET, svix, BODY, RECEIVED)

    def test_tampered_old_wrong_secret_and_unsigned_are_refused(self):
        with self.assertRaises(SignatureError):
            verify_standard_webhook(SECRET, HEADERS, BODY + b" ", RECEIVED)
        with self.assertRaisesRegex(SignatureError, "tolerance"):
            verify_standard_webhook(SECRET, HEADERS, BODY, RECEIVED + 301_000)
        with self.assertRaisesRegex(SignatureError, "tolerance"):
            verify_standard_webhook(SECRET, HEADERS, BODY, RECEIVED - 310_000)
        with self.assertRaises(SignatureError):
            verify_standard_webhook("whsec_b3RoZXI=", HEADERS, BODY, RECEIVED)
        with self.assertRaisesRegex(SignatureError, "missing"):
            verify_standard_webhook(SECRET, HEADERS[:2], BODY, RECEIVED)


class Hmac(unittest.TestCase):
    def test_hex(self):
        sig = hmac.new(b"s3cret", b'{"a":1}', hashlib.sha256).hexdigest()
        verify_hmac_sha256_hex("s3cret", b'{"a":1}', sig.upper())
        with self.assertRaises(SignatureError):
            verify_hmac_sha256_hex("s3cret", b'{"a":2}', sig)
        with self.assertRaises(SignatureError):
            verify_hmac_sha256_hex("s3cret", b'{"a":1}', None)

    def test_timestamped(self):
        body = b'{"id":"evt_1"}'
        sig = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
        self.assertEqual(verify_timestamped_hmac("k", f"t=1700000000,v1={sig}", body, 1700000000_000), 1700000000)
        with self.assertRaisesRegex(SignatureError, "tolerance"):
            verify_timestamped_hmac("k", f"t=1700000000,v1={sig}", body, 1700000400_000)
        with self.assertRaises(SignatureError):
            verify_timestamped_hmac("k", f"t=1700000000,v1={sig}", body + b"x", 1700000000_000)


class Payload(unittest.TestCase):
    def test_errors_name_the_field(self):
        p = parse_payload('{"customer":{"email":"a@b.c","tags":[1]},"n":3,"ok":true}')
        self.assertEqual(field(p, "customer.email", str), "a@b.c")
        self.assertEqual(field(p, "customer.tags.0", int), 1)
        self.assertIsNone(field(p, "customer.phone", str, optional=True))
        with self.assertRaisesRegex(PayloadError, r"^customer\.phone: is missing$"):
            field(p, "customer.phone", str)
        with self.assertRaisesRegex(PayloadError, r"^n: expected a string, got a number$"):
            field(p, "n", str)
        with self.assertRaisesRegex(PayloadError, "expected a whole number, got a boolean"):
            field(p, "ok", int)
        with self.assertRaisesRegex(PayloadError, "^payload: expected a JSON object"):
            parse_payload("[1]")


if __name__ == "__main__":
    unittest.main()
