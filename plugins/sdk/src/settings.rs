//! A plugin's configuration keys, read with errors that name the missing key, and the
//! endpoints built from them.

use crate::adapter::{SendError, WebhookError};
use crate::http;

/// A plugin's configuration, read through the `belfry:plugin/config` import, with errors that
/// name the key.
#[derive(Clone, Copy)]
pub struct Config {
    adapter: &'static str,
    get: fn(&str) -> Option<String>,
}

impl Config {
    /// The plugin's own configuration (the host's `config.get`); `adapter` names it in error
    /// messages.
    pub const fn new(adapter: &'static str) -> Self {
        Config {
            adapter,
            get: crate::config::get,
        }
    }

    /// Configuration read from `get` instead of the host: what unit tests on the host target
    /// use (see [`crate::testing::set_config`] and [`crate::testing::config_source`]).
    pub const fn with_source(adapter: &'static str, get: fn(&str) -> Option<String>) -> Self {
        Config { adapter, get }
    }

    /// The adapter name given to [`new`](Self::new).
    pub fn adapter(&self) -> &'static str {
        self.adapter
    }

    /// The value of `key`, trimmed; unset and blank are both `None`.
    pub fn optional(&self, key: &str) -> Option<String> {
        (self.get)(key)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    }

    /// The value of `key`, or a permanent failure naming it.
    pub fn required(&self, key: &str) -> Result<String, SendError> {
        self.optional(key).ok_or_else(|| {
            SendError::Permanent(format!(
                "missing config key `{key}`: the {} adapter needs it",
                self.adapter
            ))
        })
    }

    /// The webhook signing secret under `key`: without it no callback can be verified, so
    /// every one is refused as unauthorized.
    pub fn webhook_secret(&self, key: &str) -> Result<String, WebhookError> {
        self.optional(key).ok_or_else(|| {
            WebhookError::Unauthorized(format!(
                "the {} webhook secret is not configured (config key `{key}`)",
                self.adapter
            ))
        })
    }

    /// `path` under the base URL in `key` (or `default`), e.g. `api_base` + `/emails`.
    pub fn endpoint(
        &self,
        key: &str,
        default: &str,
        path: &str,
    ) -> Result<http::Target, SendError> {
        let base = self.optional(key).unwrap_or_else(|| default.to_string());
        http::Target::parse(&join_url(&base, path))
            .map_err(|err| SendError::Permanent(format!("config key `{key}`: {err}")))
    }

    /// The failure for a message whose content is not the adapter's channel.
    pub fn wrong_content(&self, expected: &str) -> SendError {
        SendError::Permanent(format!(
            "the {} adapter sends only {expected} content",
            self.adapter
        ))
    }

    /// The adapter's answer to `handle-webhook` when its provider calls nothing back.
    pub fn no_webhooks(&self) -> WebhookError {
        WebhookError::Unsupported(format!(
            "the {} adapter receives no provider callbacks",
            self.adapter
        ))
    }
}

/// `base` and `path` joined with exactly one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        format!("{base}/")
    } else {
        format!("{base}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str) -> Option<String> {
        match key {
            "api_key" => Some(" key ".to_string()),
            "blank" => Some("  ".to_string()),
            "api_base" => Some("http://127.0.0.1:8025/".to_string()),
            _ => None,
        }
    }

    const CONFIG: Config = Config::with_source("resend", get);

    #[test]
    fn config_trims_and_names_missing_keys() {
        assert_eq!(CONFIG.required("api_key"), Ok("key".to_string()));
        assert_eq!(CONFIG.optional("blank"), None);
        let Err(SendError::Permanent(message)) = CONFIG.required("from") else {
            panic!("a missing key is permanent");
        };
        assert!(message.contains("`from`"), "{message}");
        let Err(WebhookError::Unauthorized(message)) = CONFIG.webhook_secret("webhook_secret")
        else {
            panic!("a missing secret is unauthorized");
        };
        assert!(message.contains("not configured"), "{message}");
    }

    #[test]
    fn endpoints_join_the_base_and_the_path() {
        let target = CONFIG
            .endpoint("api_base", "https://api.resend.com", "/emails")
            .unwrap();
        assert_eq!(target.authority(), "127.0.0.1:8025");
        assert_eq!(target.path_with_query(), "/emails");
        let target = CONFIG
            .endpoint("other", "https://api.resend.com", "emails")
            .unwrap();
        assert_eq!(target.authority(), "api.resend.com");
        assert!(target.is_https());
        assert!(matches!(
            CONFIG.endpoint("api_key", "https://x", "/"),
            Err(SendError::Permanent(m)) if m.contains("`api_key`")
        ));
        assert_eq!(join_url("https://ntfy.sh", ""), "https://ntfy.sh/");
    }
}
