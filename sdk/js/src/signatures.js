// Verifying signed provider webhooks: HMAC-SHA256 over the raw body, and Standard Webhooks
// (https://www.standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature`,
// or the same headers prefixed `svix-`). Every comparison is constant-time, and timestamps are
// checked against the host's `received-at-ms`, not the guest's clock.
import { hmacSha256, utf8 } from './sha256.js';

/** The contract's tolerance for a signature timestamp: 5 minutes either way. */
export const TOLERANCE_MS = 5 * 60 * 1000;

/** Why a webhook was refused; maps to the contract's `unauthorized`. */
export class SignatureError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SignatureError';
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64Encode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return out;
}

/** Standard base64 (padding optional); throws SignatureError on anything else. */
export function base64Decode(text) {
  const clean = text.replace(/=+$/, '');
  const out = [];
  let acc = 0;
  let bits = 0;
  for (const ch of clean) {
    const v = B64.indexOf(ch);
    if (v < 0) throw new SignatureError('not base64');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Compares without stopping at the first difference, so timing says nothing about where. */
export function timingSafeEqual(a, b) {
  const x = utf8(a);
  const y = utf8(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The first value of header `name` (case-insensitive) in the contract's header list. */
export function header(headers, name) {
  const want = name.toLowerCase();
  for (const [k, v] of headers) if (k.toLowerCase() === want) return v;
  return undefined;
}

/** Throws unless `timestampMs` is within `toleranceMs` of `receivedAtMs` (number or bigint). */
export function checkTimestamp(timestampMs, receivedAtMs, toleranceMs = TOLERANCE_MS) {
  const skew = Math.abs(Number(receivedAtMs) - timestampMs);
  if (!Number.isFinite(skew) || skew > toleranceMs) {
    throw new SignatureError(`timestamp is ${Math.round(skew / 1000)} s from the time received, over the ${toleranceMs / 1000} s tolerance`);
  }
}

/** Throws unless `signatureHex` is HMAC-SHA256(secret, body) in hex (any case). */
export function verifyHmacSha256Hex(secret, body, signatureHex) {
  if (!signatureHex) throw new SignatureError('no signature');
  if (!timingSafeEqual(hex(hmacSha256(secret, body)), signatureHex.trim().toLowerCase())) {
    throw new SignatureError('signature does not match');
  }
}

/**
 * Verifies a Standard Webhooks request: `secret` is `whsec_` + base64; `request` is the
 * contract's webhook-request (headers, raw body, received-at-ms). Returns the message id
 * (a provider event id to deduplicate by); throws SignatureError when it is not authentic.
 */
export function verifyStandardWebhook(secret, request, toleranceMs = TOLERANCE_MS) {
  const get = (n) => header(request.headers, `webhook-${n}`) ?? header(request.headers, `svix-${n}`);
  const id = get('id');
  const ts = get('timestamp');
  const sigs = get('signature');
  if (!id || !ts || !sigs) throw new SignatureError('missing webhook-id, webhook-timestamp or webhook-signature');
  if (!/^\d{1,12}$/.test(ts)) throw new SignatureError('webhook-timestamp is not a number of seconds');
  checkTimestamp(Number(ts) * 1000, request.receivedAtMs, toleranceMs);
  const key = base64Decode(secret.startsWith('whsec_') ? secret.slice(6) : secret);
  const body = request.body instanceof Uint8Array ? request.body : utf8(request.body);
  const signed = new Uint8Array([...utf8(`${id}.${ts}.`), ...body]);
  const expected = base64Encode(hmacSha256(key, signed));
  const ok = sigs.split(' ').some((s) => s.startsWith('v1,') && timingSafeEqual(s.slice(3), expected));
  if (!ok) throw new SignatureError('no v1 signature matches');
  return id;
}
