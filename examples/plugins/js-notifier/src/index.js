// invoice-due: a belfry notifier written in JavaScript, with its templates in its own package.
//
// Built by `belfry-build-js` (sdk/js) into a component for the `notifier` world of
// belfry:plugin@1.0.0. The functions below are the `notifications` interface; `log` and
// `assets` are what the host gives every notifier.
import { log } from 'belfry:plugin/log@1.0.0';
import { read } from 'belfry:plugin/assets@1.0.0';
import { field, parsePayload, PayloadError, withPlanErrors } from '@belfry/plugin-sdk';

const TEMPLATE = 'invoice-due';
/** The part of each channel the renderer cannot do without (see the template layout). */
const REQUIRED_PART = { email: 'subject', 'in-app': 'headline' };

/** The customers of the payload, each checked, with the field named when one is wrong. */
function customers(p) {
  const list = field(p, 'customers', 'array');
  if (list.length === 0) throw new PayloadError('customers', 'is empty');
  return list.map((c, i) => ({
    id: field(c, 'id', 'string', { prefix: `customers.${i}` }),
    name: field(c, 'name', 'string', { prefix: `customers.${i}` }),
    email: field(c, 'email', 'string', { optional: true, prefix: `customers.${i}` }),
    locale: field(c, 'locale', 'string', { optional: true, prefix: `customers.${i}` }),
  }));
}

function invoice(p) {
  const amount = field(p, 'amount_cents', 'number');
  if (!Number.isInteger(amount) || amount < 0) {
    throw new PayloadError('amount_cents', 'expected a whole number of cents, 0 or more');
  }
  return {
    invoice_id: field(p, 'invoice_id', 'string'),
    due_date: field(p, 'due_date', 'string'),
    amount: `${(amount / 100).toFixed(2)} ${field(p, 'currency', 'string')}`,
    days_overdue: field(p, 'days_overdue', 'number', { optional: true }) ?? 0,
    pay_url: field(p, 'pay_url', 'string'),
  };
}

export const notifications = withPlanErrors({
  describe() {
    return {
      key: 'invoice-due',
      version: '1.0.0',
      category: 'billing',
      channels: ['email', 'in-app'],
      description: 'An invoice is coming due (or is overdue)',
      severity: 'normal',
      fallbacks: [],
      foldDeferred: false,
      workflow: undefined,
    };
  },

  recipients(payload) {
    const p = parsePayload(payload);
    invoice(p);
    return customers(p).map((c) => ({
      id: c.id,
      email: c.email,
      phone: undefined,
      data: JSON.stringify({ name: c.name, locale: c.locale ?? null }),
    }));
  },

  channels(payload, recipient) {
    const inv = invoice(parsePayload(payload));
    return {
      channels: recipient.email ? ['email', 'in-app'] : ['in-app'],
      // A month overdue matters more than a reminder: raise it for this recipient.
      severity: inv.days_overdue > 30 ? 'high' : undefined,
      held: [],
    };
  },

  build(payload, recipient, channel) {
    const p = parsePayload(payload);
    const me = customers(p).find((c) => c.id === recipient.id);
    if (!me) throw new PayloadError('customers', `has no customer with id ${recipient.id}`);
    // The templates travel in this package; a missing one is this package's bug, said here
    // rather than later as a renderer's template-not-found.
    const path = `templates/${TEMPLATE}/${channel}/${REQUIRED_PART[channel]}.j2`;
    if (read(path) === undefined) {
      throw { tag: 'failed', val: `the package has no ${path}` };
    }
    log('debug', `invoice-due: ${channel} for ${recipient.id} in ${me.locale ?? 'the default locale'}`);
    return {
      template: TEMPLATE,
      channel,
      data: JSON.stringify({ ...invoice(p), name: me.name }),
      locale: me.locale,
    };
  },
});
