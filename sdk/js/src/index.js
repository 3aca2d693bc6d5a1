// @belfry/plugin-sdk: helpers for belfry plugins written in JavaScript (contract belfry:plugin@1).
// The contract's own functions are imported from `belfry:plugin/...@1.0.0`; the generated
// declarations for them are in types/ (npm run types).
export { PayloadError, parsePayload, field, withPlanErrors, planError } from './payload.js';
export { sha256, hmacSha256, utf8 } from './sha256.js';
export {
  TOLERANCE_MS,
  SignatureError,
  base64Encode,
  base64Decode,
  hex,
  timingSafeEqual,
  header,
  checkTimestamp,
  verifyHmacSha256Hex,
  verifyStandardWebhook,
} from './signatures.js';

/** The text of one of this plugin's assets, or undefined; pass the imported `read`. */
export function readText(read, path) {
  const bytes = read(path);
  if (bytes === undefined) return undefined;
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const n = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    let c = n === 1 ? b : b & (0xff >> (n + 1));
    for (let j = 1; j < n; j++) c = (c << 6) | (bytes[i + j] & 63);
    out += String.fromCodePoint(c);
    i += n;
  }
  return out;
}
