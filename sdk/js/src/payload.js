// Typed access to an event payload (JSON text) whose errors name the field, so that a notifier
// can answer `invalid-payload` with a message an operator can act on.

/** A payload that lacks what the plugin needs; `field` is the dotted path, e.g. `customer.email`. */
export class PayloadError extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.name = 'PayloadError';
    this.field = field;
  }
}

/** Parses payload JSON; anything but a JSON object is a PayloadError naming `payload`. */
export function parsePayload(json) {
  let value;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new PayloadError('payload', `not JSON (${e.message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PayloadError('payload', `expected a JSON object, got ${kindOf(value)}`);
  }
  return value;
}

function kindOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

const CHECKS = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  boolean: (v) => typeof v === 'boolean',
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  any: () => true,
};

/**
 * The value at `path` (dots between keys, numbers index arrays: `customers.0.email`) in `obj`,
 * checked to be of `type` (`string`, `number`, `boolean`, `object`, `array`, `any`).
 * A missing or null value throws a PayloadError unless `optional` is set, then it is undefined.
 * `prefix` names where `obj` itself sits, for messages about nested objects.
 */
export function field(obj, path, type = 'any', { optional = false, prefix = '' } = {}) {
  const check = CHECKS[type];
  if (!check) throw new TypeError(`field(): unknown type ${type}`);
  const full = prefix ? `${prefix}.${path}` : path;
  let v = obj;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object') {
      v = undefined;
      break;
    }
    v = v[Array.isArray(v) ? Number(key) : key];
  }
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new PayloadError(full, 'is missing');
  }
  if (!check(v)) {
    throw new PayloadError(full, `expected ${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}, got ${kindOf(v)}`);
  }
  if (type === 'string' && v.trim() === '' && !optional) {
    throw new PayloadError(full, 'is empty');
  }
  return v;
}

/**
 * Wraps a notifier's exported functions so a thrown PayloadError becomes the contract's
 * `invalid-payload` error and any other error `failed`, instead of a trap.
 */
export function withPlanErrors(exports) {
  const wrapped = {};
  for (const [name, fn] of Object.entries(exports)) {
    wrapped[name] = (...args) => {
      try {
        return fn(...args);
      } catch (e) {
        throw planError(e);
      }
    };
  }
  return wrapped;
}

/** The contract's `plan-error` for an error thrown while planning. */
export function planError(e) {
  if (e && typeof e === 'object' && typeof e.tag === 'string' && 'val' in e) return e;
  if (e instanceof PayloadError) return { tag: 'invalid-payload', val: e.message };
  return { tag: 'failed', val: e instanceof Error ? e.message : String(e) };
}
