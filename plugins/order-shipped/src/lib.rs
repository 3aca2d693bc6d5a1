//! The `order-shipped` notifier (category `orders`).
//!
//! Payload:
//! `{"order_id": "...", "carrier": "...", "tracking_url": "...", "customer": {...}}` or the
//! same with `"customers": [{...}, ...]`; each customer is `{id, email?, phone?, name?}`.
//! Channels per recipient: `email` if it has an address, `sms` if it has a phone number,
//! `webhook` always.

use belfry_plugin_sdk::notifier::{Description, Guest, PlanError, RecipientPlan, Severity};
use belfry_plugin_sdk::payload::{
    PayloadError, as_object, empty, name_from_recipient_data, optional_non_empty_string,
    parse_object, required_string, wrong_type,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::{Value, json};

const KEY: &str = "order-shipped";
/// What the templates call a customer who gave no name ("Hi there,").
const DEFAULT_NAME: &str = "there";

struct OrderShipped;

impl Guest for OrderShipped {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "orders".to_string(),
            channels: vec![Channel::Email, Channel::Sms, Channel::Webhook],
            description: "Tells customers that their order has shipped, with a tracking link"
                .to_string(),
            severity: Severity::Normal,
            fallbacks: Vec::new(),
            fold_deferred: false,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let order = Order::parse(&payload)?;
        Ok(order.customers.iter().map(Customer::recipient).collect())
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        Order::parse(&payload)?;
        let mut channels = Vec::with_capacity(3);
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
        }
        if recipient.phone.as_deref().is_some_and(|p| !p.is_empty()) {
            channels.push(Channel::Sms);
        }
        channels.push(Channel::Webhook);
        Ok(RecipientPlan {
            channels,
            severity: None,
            held: Vec::new(),
        })
    }

    fn build(
        payload: String,
        recipient: Recipient,
        channel: Channel,
    ) -> Result<RenderRequest, PlanError> {
        let order = Order::parse(&payload)?;
        let customer = order.customers.iter().find(|c| c.id == recipient.id);
        let path = customer.map_or("customer", |c| c.path.as_str());
        let email = recipient
            .email
            .clone()
            .or_else(|| customer.and_then(|c| c.email.clone()));
        let phone = recipient
            .phone
            .clone()
            .or_else(|| customer.and_then(|c| c.phone.clone()));
        match channel {
            Channel::Email if email.is_none() => {
                return Err(PlanError::InvalidPayload(format!(
                    "missing field `{path}.email` (needed for the email channel)"
                )));
            }
            Channel::Sms if phone.is_none() => {
                return Err(PlanError::InvalidPayload(format!(
                    "missing field `{path}.phone` (needed for the sms channel)"
                )));
            }
            Channel::Email | Channel::Sms | Channel::Webhook => {}
            other => {
                return Err(PlanError::Failed(format!(
                    "the order-shipped notifier does not use the {} channel",
                    other.as_str()
                )));
            }
        }
        let name = customer
            .and_then(|c| c.name.clone())
            .or_else(|| name_from_recipient_data(recipient.data.as_deref()))
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        let data = json!({
            "order_id": order.order_id,
            "carrier": order.carrier,
            "tracking_url": order.tracking_url,
            "name": name,
            "recipient_id": recipient.id,
            "email": email,
            "phone": phone,
            "customer": customer.map_or(Value::Null, |c| c.raw.clone()),
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

struct Order {
    order_id: String,
    carrier: String,
    tracking_url: String,
    customers: Vec<Customer>,
}

struct Customer {
    /// Where it is in the payload, for error messages: `customer` or `customers[2]`.
    path: String,
    id: String,
    email: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    raw: Value,
}

impl Order {
    fn parse(payload: &str) -> Result<Self, PayloadError> {
        let payload = parse_object(payload)?;
        let order_id = required_string(&payload, "order_id", "order_id")?;
        let carrier = required_string(&payload, "carrier", "carrier")?;
        let tracking_url = required_string(&payload, "tracking_url", "tracking_url")?;

        let single = payload.get("customer").filter(|v| !v.is_null());
        let many = payload.get("customers").filter(|v| !v.is_null());
        let customers = match (single, many) {
            (Some(_), Some(_)) => {
                return Err(PayloadError::new(
                    "give either field `customer` or field `customers`, not both",
                ));
            }
            (None, None) => {
                return Err(PayloadError::new(
                    "missing field `customer` (or `customers`)",
                ));
            }
            (Some(customer), None) => vec![Customer::parse(customer, "customer".to_string())?],
            (None, Some(Value::Array(list))) => {
                if list.is_empty() {
                    return Err(empty("customers"));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, c)| Customer::parse(c, format!("customers[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?
            }
            (None, Some(_)) => return Err(wrong_type("customers", "an array")),
        };
        Ok(Order {
            order_id,
            carrier,
            tracking_url,
            customers,
        })
    }
}

impl Customer {
    fn parse(value: &Value, path: String) -> Result<Self, PayloadError> {
        let object = as_object(value, &path)?;
        let id = required_string(object, "id", &format!("{path}.id"))?;
        let email = optional_non_empty_string(object, "email", &format!("{path}.email"))?;
        let phone = optional_non_empty_string(object, "phone", &format!("{path}.phone"))?;
        let name = optional_non_empty_string(object, "name", &format!("{path}.name"))?;
        Ok(Customer {
            path,
            id,
            email,
            phone,
            name,
            raw: value.clone(),
        })
    }

    fn recipient(&self) -> Recipient {
        Recipient {
            id: self.id.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            data: self
                .name
                .as_ref()
                .map(|name| json!({ "name": name }).to_string()),
        }
    }
}

belfry_plugin_sdk::export_notifier!(OrderShipped);
