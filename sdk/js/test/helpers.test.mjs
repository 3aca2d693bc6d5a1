// The SDK's helpers against Node's own crypto (not our code) and the Standard Webhooks spec's
// worked example.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  sha256, hmacSha256, hex, base64Encode, base64Decode, verifyStandardWebhook,
  verifyHmacSha256Hex, SignatureError, field, parsePayload, PayloadError, planError, readText, utf8,
} from '../src/index.js';

test('sha256 and hmac agree with node:crypto for lengths around the block size', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
    const data = randomBytes(n);
    assert.equal(hex(sha256(data)), createHash('sha256').update(data).digest('hex'), `sha256 of ${n} bytes`);
    for (const k of [1, 32, 64, 65, 100]) {
      const key = randomBytes(k);
      assert.equal(hex(hmacSha256(key, data)), createHmac('sha256', key).update(data).digest('hex'), `hmac ${k}/${n}`);
    }
  }
  assert.equal(hex(sha256('héllo ✓ 𝄞')), createHash('sha256').update('héllo ✓ 𝄞', 'utf8').digest('hex'));
});

test('base64 round trips', () => {
  for (const n of [0, 1, 2, 3, 4, 31]) {
    const b = randomBytes(n);
    assert.equal(base64Encode(b), b.toString('base64'));
    assert.deepEqual(Buffer.from(base64Decode(b.toString('base64'))), b);
  }
});

test('standard webhooks: the spec example verifies; tampering, age and a wrong secret do not', () => {
  // The example from the Standard Webhooks specification.
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const body = '{"test": 2432232314}';
  const headers = [
    ['webhook-id', 'msg_p5jXN8AQM9LWM0D4loKWxJek'],
    ['webhook-timestamp', '1614265330'],
    ['webhook-signature', 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='],
  ];
  const receivedAtMs = 1614265330n * 1000n + 2000n;
  assert.equal(verifyStandardWebhook(secret, { headers, body: utf8(body), receivedAtMs }), 'msg_p5jXN8AQM9LWM0D4loKWxJek');
  assert.throws(() => verifyStandardWebhook(secret, { headers, body: utf8(body + ' '), receivedAtMs }), SignatureError);
  assert.throws(() => verifyStandardWebhook(secret, { headers, body, receivedAtMs: receivedAtMs + 301000n }), /tolerance/);
  assert.throws(() => verifyStandardWebhook('whsec_b3RoZXI=', { headers, body, receivedAtMs }), SignatureError);
  assert.throws(() => verifyStandardWebhook(secret, { headers: headers.slice(0, 2), body, receivedAtMs }), /missing/);
});

test('hmac hex verification', () => {
  const sig = createHmac('sha256', 's3cret').update('{"a":1}').digest('hex');
  verifyHmacSha256Hex('s3cret', '{"a":1}', sig.toUpperCase());
  assert.throws(() => verifyHmacSha256Hex('s3cret', '{"a":2}', sig), SignatureError);
  assert.throws(() => verifyHmacSha256Hex('s3cret', '{"a":1}', undefined), /no signature/);
});

test('payload errors name the field', () => {
  const p = parsePayload('{"customer":{"email":"a@b.c","tags":[1]},"n":3}');
  assert.equal(field(p, 'customer.email', 'string'), 'a@b.c');
  assert.equal(field(p, 'customer.tags.0', 'number'), 1);
  assert.equal(field(p, 'customer.phone', 'string', { optional: true }), undefined);
  assert.throws(() => field(p, 'customer.phone', 'string'), { message: 'customer.phone: is missing' });
  assert.throws(() => field(p, 'n', 'string'), { message: 'n: expected a string, got a number' });
  assert.throws(() => parsePayload('[1]'), PayloadError);
  assert.deepEqual(planError(new PayloadError('x', 'is missing')), { tag: 'invalid-payload', val: 'x: is missing' });
  assert.deepEqual(planError(new Error('boom')), { tag: 'failed', val: 'boom' });
});

test('readText decodes UTF-8 assets', () => {
  const bytes = new Uint8Array(Buffer.from('Grüße {{ name }} 𝄞'));
  assert.equal(readText(() => bytes, 'x'), 'Grüße {{ name }} 𝄞');
  assert.equal(readText(() => undefined, 'x'), undefined);
});
