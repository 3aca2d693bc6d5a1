//! Rendering one request from a package's assets, apart from the host calls so that it runs
//! (and is tested) on the host target too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use belfry_plugin_sdk::renderer::RenderError;
use belfry_plugin_sdk::types::{
    Channel, ChatContent, Content, EmailContent, InAppAction, InAppContent, PushContent,
    RenderRequest, SmsContent, WebhookContent,
};

use crate::locale::{Locale, split_file_name};

/// Where templates sit in a package's assets.
pub const ROOT: &str = "templates";

/// The read-only files a request is rendered from: in the component, the contract's `assets`
/// import (the calling notifier's package); in unit tests, a map.
pub trait Assets: Send + Sync {
    /// The bytes at `path`, or none.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Every path starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Vec<String>;
}

/// Rendered content, and what the caller should log about how it was rendered.
#[derive(Debug)]
pub struct Rendered {
    pub content: Content,
    /// Things worth a warning that did not stop the render (a locale that does not parse).
    pub warnings: Vec<String>,
}

/// Renders `request` from `assets`.
///
/// A fresh minijinja environment each call, never one cached in the instance: the host may
/// keep an instance for calls made for different notifiers, and a template loaded for one must
/// not be seen by the next.
pub fn render(assets: Arc<dyn Assets>, request: &RenderRequest) -> Result<Rendered, RenderError> {
    let template = request.template.as_str();
    check_template_name(template)?;
    let channel = request.channel.as_str();
    let data: Value = serde_json::from_str(&request.data)
        .map_err(|err| RenderError::Failed(format!("render data is not valid JSON: {err}")))?;
    if !data.is_object() {
        return Err(RenderError::Failed(
            "render data must be a JSON object".to_string(),
        ));
    }
    let mut warnings = Vec::new();
    let locale = match request.locale.as_deref() {
        None => None,
        Some(given) => match Locale::parse(given) {
            Ok(locale) => Some(locale),
            Err(bad) => {
                warnings.push(format!(
                    "{bad}; rendering template `{template}` untranslated"
                ));
                None
            }
        },
    };
    let variant = Variant::list(&*assets, template, channel);
    let renderer = Renderer {
        env: environment(assets.clone()),
        assets,
        template,
        channel,
        locale,
        variant,
        data,
    };
    let r = &renderer;
    let content = match request.channel {
        Channel::Email => Content::Email(EmailContent {
            subject: r.required("subject")?,
            html: r.optional("html")?,
            text: r.optional("text")?,
        }),
        Channel::Sms => Content::Sms(SmsContent {
            text: r.required("text")?,
        }),
        Channel::Push => Content::Push(PushContent {
            title: r.required("title")?,
            body: r.required("body")?,
            data: r.optional("data")?,
        }),
        Channel::Chat => Content::Chat(ChatContent {
            text: r.required("text")?,
            blocks: r.optional("blocks")?,
        }),
        Channel::InApp => {
            let headline = r.required("headline")?;
            let body = r.required("body")?;
            let primary_action = match (r.optional("action_label")?, r.optional("action_url")?) {
                (None, None) => None,
                (Some(label), Some(url)) => Some(InAppAction { label, url }),
                (Some(_), None) => return Err(r.not_found("action_url")),
                (None, Some(_)) => return Err(r.not_found("action_label")),
            };
            Content::InApp(InAppContent {
                headline,
                body,
                primary_action,
            })
        }
        Channel::Webhook => Content::Webhook(WebhookContent {
            body: r.required("body")?,
        }),
    };
    Ok(Rendered { content, warnings })
}

/// The part files of one template's channel variant (`templates/<template>/<channel>/`): for
/// each part, its default file (locale `None`) and its translations, by normalised locale.
struct Variant {
    parts: BTreeMap<String, BTreeMap<Option<String>, String>>,
}

impl Variant {
    fn list(assets: &dyn Assets, template: &str, channel: &str) -> Variant {
        let dir = format!("{ROOT}/{template}/{channel}/");
        let mut parts: BTreeMap<String, BTreeMap<Option<String>, String>> = BTreeMap::new();
        for path in assets.list(&dir) {
            let Some(file) = path.strip_prefix(&dir) else {
                continue;
            };
            // Deeper files are partials for `include`, not parts.
            if file.contains('/') {
                continue;
            }
            let Some((part, locale)) = split_file_name(file) else {
                continue;
            };
            // The listing is sorted, so of two spellings of one locale (`de_AT`, `de-at`) the
            // same one always wins.
            parts
                .entry(part.to_string())
                .or_default()
                .entry(locale.map(|l| l.as_str().to_string()))
                .or_insert_with(|| file.to_string());
        }
        Variant { parts }
    }

    /// The file for `part` in `locale`: the closest translation, else the default.
    fn pick(&self, part: &str, locale: Option<&Locale>) -> Option<&str> {
        let files = self.parts.get(part)?;
        let translated = locale
            .map(Locale::fallbacks)
            .unwrap_or_default()
            .into_iter()
            .find_map(|tag| files.get(&Some(tag.as_str().to_string())));
        translated.or_else(|| files.get(&None)).map(String::as_str)
    }
}

/// Renders the parts of one template's channel variant.
struct Renderer<'a> {
    env: Environment<'static>,
    assets: Arc<dyn Assets>,
    template: &'a str,
    channel: &'static str,
    locale: Option<Locale>,
    variant: Variant,
    data: Value,
}

impl Renderer<'_> {
    /// The minijinja name of `part`'s file (relative to [`ROOT`]), if the variant has one.
    fn name(&self, part: &str) -> Option<String> {
        let file = self.variant.pick(part, self.locale.as_ref())?;
        Some(format!("{}/{}/{file}", self.template, self.channel))
    }

    /// The most useful "not found": a missing template, channel variant, or part.
    fn not_found(&self, part: &str) -> RenderError {
        let template = self.template;
        let channel = self.channel;
        let template_dir = format!("{ROOT}/{template}/");
        let message = if !self.variant.parts.is_empty() {
            let mut message =
                format!("required template file {template_dir}{channel}/{part}.j2 not found");
            if let Some(locale) = &self.locale {
                message.push_str(&format!(
                    ", nor a translation for locale {} or a language it falls back to",
                    locale.as_str()
                ));
            }
            let others: Vec<&str> = (self.variant.parts.get(part).into_iter())
                .flat_map(|files| files.keys().flatten().map(String::as_str))
                .collect();
            if !others.is_empty() {
                message.push_str(&format!(" (translations: {})", others.join(", ")));
            }
            message
        } else if self.assets.list(&template_dir).is_empty() {
            format!("template `{template}` not found: no {template_dir} in the package's assets")
        } else {
            format!(
                "template `{template}` has no {channel} variant: no {template_dir}{channel}/ in the package's assets"
            )
        };
        RenderError::TemplateNotFound(message)
    }

    fn required(&self, part: &str) -> Result<String, RenderError> {
        match self.name(part) {
            Some(name) => self.render(&name),
            None => Err(self.not_found(part)),
        }
    }

    fn optional(&self, part: &str) -> Result<Option<String>, RenderError> {
        self.name(part).map(|name| self.render(&name)).transpose()
    }

    fn render(&self, name: &str) -> Result<String, RenderError> {
        let rendered = self
            .env
            .get_template(name)
            .and_then(|template| template.render(&self.data))
            .map_err(|err| self.error(name, err))?;
        Ok(trim_one_newline(rendered))
    }

    fn error(&self, name: &str, err: minijinja::Error) -> RenderError {
        match err.kind() {
            ErrorKind::UndefinedError => {
                RenderError::MissingVariable(self.describe_undefined(name, &err))
            }
            ErrorKind::TemplateNotFound => {
                RenderError::TemplateNotFound(format!("{ROOT}/{name}: {}", error_chain(&err)))
            }
            _ => RenderError::Failed(format!("{ROOT}/{name}: {}", error_chain(&err))),
        }
    }

    /// Names the variable(s) behind an undefined-value error: minijinja reports only
    /// "undefined value" and a line, so compare what the template uses with the data.
    fn describe_undefined(&self, name: &str, err: &minijinja::Error) -> String {
        let failing = err.name().unwrap_or(name).to_string();
        let location = match err.line() {
            Some(line) => format!("{ROOT}/{failing}, line {line}"),
            None => format!("{ROOT}/{failing}"),
        };
        let Ok(template) = self.env.get_template(&failing) else {
            return format!("{location}: {err}");
        };
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let missing: BTreeSet<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| {
                let root = path.split('.').next().unwrap_or(path);
                !globals.contains(root) && lookup(&self.data, path).is_none()
            })
            .collect();
        // Prefer the variables that appear on the line the error points at.
        let line_text = err
            .line()
            .and_then(|line| template.source().lines().nth(line.checked_sub(1)?))
            .unwrap_or("");
        let on_line: Vec<&String> = missing
            .iter()
            .filter(|path| line_text.contains(path.as_str()))
            .collect();
        let names: Vec<&String> = if on_line.is_empty() {
            missing.iter().collect()
        } else {
            on_line
        };
        match names.as_slice() {
            [] => format!("{location}: {err}"),
            [one] => format!("undefined variable `{one}` in {location}"),
            many => {
                let list: Vec<String> = many.iter().map(|n| format!("`{n}`")).collect();
                format!("undefined variables {} in {location}", list.join(", "))
            }
        }
    }
}

/// Follows a dotted path (`user.name`) through the render data.
fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(data, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}

/// `email/html` is HTML-escaped and the JSON parts JSON-escaped, in every translation.
fn auto_escape(name: &str) -> AutoEscape {
    let mut segments = name.rsplit('/');
    let file = segments.next().unwrap_or(name);
    let channel = segments.next().unwrap_or("");
    let part = split_file_name(file).map(|(part, _)| part).unwrap_or("");
    match (channel, part) {
        ("email", "html") => AutoEscape::Html,
        ("webhook", "body") | ("push", "data") | ("chat", "blocks") => AutoEscape::Json,
        _ => minijinja::default_auto_escape_callback(name),
    }
}

fn error_chain(err: &minijinja::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn trim_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// A minijinja environment whose templates (and anything they `include`) load from `assets`
/// under [`ROOT`], by `/`-separated names relative to it.
fn environment(assets: Arc<dyn Assets>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // We trim exactly one trailing newline from the output ourselves.
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(auto_escape);
    env.set_loader(move |name| {
        if !is_safe_relative(name) {
            return Ok(None);
        }
        let path = format!("{ROOT}/{name}");
        match assets.read(&path) {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{path} is not UTF-8 text"),
                )
            }),
        }
    });
    env
}

/// A template name is one path segment: no separators, no `.`/`..`.
fn check_template_name(template: &str) -> Result<(), RenderError> {
    if template.is_empty()
        || template == "."
        || template == ".."
        || template.contains(['/', '\\', '\0'])
    {
        return Err(RenderError::TemplateNotFound(format!(
            "invalid template name {template:?}: it must be one directory name under {ROOT}/"
        )));
    }
    Ok(())
}

/// A '/'-separated relative path with no empty, `.` or `..` segments.
fn is_safe_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['\\', '\0'])
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package's assets in memory.
    struct Map(BTreeMap<String, String>);

    impl Assets for Map {
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            self.0.get(path).map(|s| s.clone().into_bytes())
        }
        fn list(&self, prefix: &str) -> Vec<String> {
            self.0
                .keys()
                .filter(|p| p.starts_with(prefix))
                .cloned()
                .collect()
        }
    }

    fn assets(files: &[(&str, &str)]) -> Arc<dyn Assets> {
        Arc::new(Map(files
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()))
    }

    fn request(template: &str, channel: Channel, locale: Option<&str>) -> RenderRequest {
        RenderRequest {
            template: template.to_string(),
            channel,
            data: r#"{"name": "Ada <3"}"#.to_string(),
            locale: locale.map(str::to_string),
        }
    }

    fn email(assets: &Arc<dyn Assets>, locale: Option<&str>) -> EmailContent {
        match render(assets.clone(), &request("welcome", Channel::Email, locale)) {
            Ok(Rendered {
                content: Content::Email(email),
                ..
            }) => email,
            other => panic!("expected email content, got {other:?}"),
        }
    }

    fn translated() -> Arc<dyn Assets> {
        assets(&[
            (
                "templates/welcome/email/subject.j2",
                "Welcome, {{ name }}\n",
            ),
            (
                "templates/welcome/email/subject.de.j2",
                "Willkommen, {{ name }}",
            ),
            ("templates/welcome/email/subject.fr-CA.j2", "Bienvenue (CA)"),
            ("templates/welcome/email/html.j2", "<p>Hi {{ name }}</p>"),
            (
                "templates/welcome/email/html.de.j2",
                "<p>Hallo {{ name }}</p>",
            ),
            ("templates/welcome/email/text.DE_at.j2", "Servus {{ name }}"),
            ("templates/welcome/email/text.j2", "Hi {{ name }}"),
        ])
    }

    #[test]
    fn no_locale_renders_the_defaults_with_html_escaped() {
        let e = email(&translated(), None);
        assert_eq!(e.subject, "Welcome, Ada <3");
        assert_eq!(e.html.as_deref(), Some("<p>Hi Ada &lt;3</p>"));
        assert_eq!(e.text.as_deref(), Some("Hi Ada <3"));
    }

    #[test]
    fn de_at_picks_the_exact_tag_then_the_language_per_part() {
        let e = email(&translated(), Some("de-AT"));
        assert_eq!(e.subject, "Willkommen, Ada <3");
        // The translation is escaped as its default is.
        assert_eq!(e.html.as_deref(), Some("<p>Hallo Ada &lt;3</p>"));
        // `text.DE_at.j2` is the exact tag, spelled otherwise.
        assert_eq!(e.text.as_deref(), Some("Servus Ada <3"));
    }

    #[test]
    fn request_tags_compare_case_insensitively_with_underscores() {
        let e = email(&translated(), Some("DE_at"));
        assert_eq!(e.text.as_deref(), Some("Servus Ada <3"));
        assert_eq!(e.subject, "Willkommen, Ada <3");
    }

    #[test]
    fn a_language_does_not_pick_a_regional_translation() {
        // `de` asked: `text.de-AT` is more specific than asked for, so the default is used.
        let e = email(&translated(), Some("de"));
        assert_eq!(e.text.as_deref(), Some("Hi Ada <3"));
        let e = email(&translated(), Some("fr"));
        assert_eq!(e.subject, "Welcome, Ada <3");
    }

    #[test]
    fn an_unknown_locale_falls_back_to_the_defaults() {
        let e = email(&translated(), Some("ja-JP"));
        assert_eq!(e.subject, "Welcome, Ada <3");
        assert_eq!(e.html.as_deref(), Some("<p>Hi Ada &lt;3</p>"));
    }

    #[test]
    fn a_malformed_locale_renders_the_defaults_with_a_warning() {
        let rendered = render(
            translated(),
            &request("welcome", Channel::Email, Some("../de")),
        )
        .unwrap();
        let Content::Email(e) = rendered.content else {
            panic!("email")
        };
        assert_eq!(e.subject, "Welcome, Ada <3");
        assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
        assert!(rendered.warnings[0].contains("../de"));
    }

    #[test]
    fn an_optional_part_only_translated_is_absent_in_other_locales() {
        let a = assets(&[
            ("templates/welcome/email/subject.j2", "S"),
            ("templates/welcome/email/html.de.j2", "<b>H</b>"),
        ]);
        assert_eq!(email(&a, Some("de-AT")).html.as_deref(), Some("<b>H</b>"));
        assert_eq!(email(&a, Some("en")).html, None);
        assert_eq!(email(&a, None).html, None);
    }

    fn error(a: &Arc<dyn Assets>, req: &RenderRequest) -> RenderError {
        render(a.clone(), req).expect_err("render should fail")
    }

    #[test]
    fn missing_template_channel_and_part_are_template_not_found() {
        let a = translated();
        let RenderError::TemplateNotFound(m) = error(&a, &request("nope", Channel::Email, None))
        else {
            panic!("template-not-found")
        };
        assert!(m.contains("template `nope` not found"), "{m}");
        let RenderError::TemplateNotFound(m) = error(&a, &request("welcome", Channel::Sms, None))
        else {
            panic!("template-not-found")
        };
        assert!(m.contains("has no sms variant"), "{m}");
        let only_de = assets(&[("templates/welcome/email/subject.de.j2", "S")]);
        let RenderError::TemplateNotFound(m) =
            error(&only_de, &request("welcome", Channel::Email, Some("fr")))
        else {
            panic!("template-not-found")
        };
        assert!(m.contains("subject.j2 not found"), "{m}");
        assert!(m.contains("locale fr"), "{m}");
        assert!(m.contains("translations: de"), "{m}");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let a = assets(&[("templates/t/sms/text.j2", "Hi {{ user.name }}")]);
        let RenderError::MissingVariable(m) = error(&a, &request("t", Channel::Sms, None)) else {
            panic!("missing-variable")
        };
        assert!(m.contains("`user.name`"), "{m}");
        assert!(m.contains("templates/t/sms/text.j2"), "{m}");
    }

    #[test]
    fn names_and_includes_cannot_leave_the_templates() {
        let a = assets(&[
            ("templates/t/sms/text.j2", "{% include '../secret.j2' %}"),
            ("templates/secret.j2", "secret"),
            ("secret.j2", "secret"),
        ]);
        for name in ["..", "../t", "t/sms", ""] {
            assert!(matches!(
                error(&a, &request(name, Channel::Sms, None)),
                RenderError::TemplateNotFound(_)
            ));
        }
        assert!(matches!(
            error(&a, &request("t", Channel::Sms, None)),
            RenderError::TemplateNotFound(_)
        ));
    }

    #[test]
    fn partials_include_and_do_not_count_as_parts() {
        let a = assets(&[
            (
                "templates/t/sms/text.j2",
                "{% include 't/sms/partials/p.j2' %}!",
            ),
            ("templates/t/sms/partials/p.j2", "hello {{ name }}"),
        ]);
        let Content::Sms(s) = render(a, &request("t", Channel::Sms, None))
            .unwrap()
            .content
        else {
            panic!("sms")
        };
        assert_eq!(s.text, "hello Ada <3!");
    }

    #[test]
    fn in_app_action_parts_come_in_pairs() {
        let base = [
            ("templates/t/in-app/headline.j2", "H"),
            ("templates/t/in-app/body.j2", "B"),
        ];
        let pair = [
            base[0],
            base[1],
            ("templates/t/in-app/action_label.j2", "Open"),
            ("templates/t/in-app/action_url.j2", "https://example.com"),
        ];
        let Content::InApp(c) = render(assets(&pair), &request("t", Channel::InApp, None))
            .unwrap()
            .content
        else {
            panic!("in-app")
        };
        assert_eq!(c.primary_action.unwrap().label, "Open");
        let half = [
            base[0],
            base[1],
            ("templates/t/in-app/action_label.j2", "Open"),
        ];
        let RenderError::TemplateNotFound(m) =
            error(&assets(&half), &request("t", Channel::InApp, None))
        else {
            panic!("template-not-found")
        };
        assert!(m.contains("action_url"), "{m}");
    }

    #[test]
    fn json_parts_are_json_escaped() {
        let a = assets(&[("templates/t/webhook/body.j2", r#"{"name": {{ name }}}"#)]);
        let Content::Webhook(w) = render(a, &request("t", Channel::Webhook, None))
            .unwrap()
            .content
        else {
            panic!("webhook")
        };
        assert_eq!(w.body, r#"{"name": "Ada <3"}"#);
    }
}
