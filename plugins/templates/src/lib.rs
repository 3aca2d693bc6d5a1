//! The `templates` renderer (contract 1.0, `wit/plugin@1`).
//!
//! Templates are read at call time through the contract's `assets` import: the package assets
//! of the notifier whose request is being rendered, and nothing else (no file grant, no other
//! package). They are laid out as `templates/<template>/<channel>/<part>.j2` with channel
//! directories `email`, `sms`, `push`, `chat`, `in-app` and `webhook`:
//!
//! | channel   | parts (`*` = required)                                   |
//! | --------- | -------------------------------------------------------- |
//! | `email`   | `subject`*, `html`, `text`                               |
//! | `sms`     | `text`*                                                  |
//! | `push`    | `title`*, `body`*, `data` (JSON)                         |
//! | `chat`    | `text`*, `blocks` (JSON)                                 |
//! | `in-app`  | `headline`*, `body`*, `action_label` + `action_url` pair |
//! | `webhook` | `body`* (JSON)                                           |
//!
//! **Locales.** A part's translations sit beside it as `<part>.<locale>.j2`. For a request in
//! `de-AT` each part is looked up as `<part>.de-AT.j2`, then `<part>.de.j2`, then `<part>.j2`
//! (see [`locale`]); tags compare case-insensitively and `_` counts as `-`. A locale that does
//! not parse renders the defaults, with a warning in the host's log.
//!
//! Rendering uses minijinja with strict undefined behaviour: a variable the data lacks is a
//! `missing-variable` error; a missing template, channel variant or required part is
//! `template-not-found`. `html` is HTML-escaped; the JSON parts (`webhook/body`, `push/data`,
//! `chat/blocks`) are JSON-escaped, so `{{ value }}` there writes a JSON value (quotes
//! included). One trailing newline is trimmed from every rendered part. Files below a channel
//! directory (`templates/t/email/partials/…`) are for `{% include %}`, named relative to
//! `templates/`. The content rules of each channel are the host's to check, not this plugin's.
//!
//! **Digests.** A digest delivery is the host's own request (template `digest`, items built by
//! several notifiers), so for it the host hands this renderer its own package's assets: the
//! digest templates are in `plugins/templates/assets/templates/digest/`.
//!
//! Nothing is cached between calls: an instance the host keeps may render for another
//! notifier next, with other assets.

mod locale;
mod render;

use std::sync::Arc;

use belfry_plugin_sdk::renderer::{Guest, RenderError};
use belfry_plugin_sdk::{Content, RenderRequest, assets, log};

/// The calling notifier's package assets, through the host.
struct CallerAssets;

impl render::Assets for CallerAssets {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        assets::read(path)
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        assets::list(prefix)
    }
}

struct Templates;

impl Guest for Templates {
    fn render(request: RenderRequest) -> Result<Content, RenderError> {
        let rendered = render::render(Arc::new(CallerAssets), &request)?;
        for warning in &rendered.warnings {
            log::warn(warning);
        }
        Ok(rendered.content)
    }
}

belfry_plugin_sdk::export_renderer!(Templates);
