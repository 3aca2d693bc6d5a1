//! The `templates` renderer.
//!
//! Templates are read at call time from the read-only directory the manifest grants at
//! `/templates`, laid out as `/templates/<template>/<channel>/<field>.j2` with channel
//! directories `email`, `sms`, `push`, `chat`, `in-app` and `webhook`:
//!
//! | channel   | fields (`*` = required)                                  |
//! | --------- | -------------------------------------------------------- |
//! | `email`   | `subject`*, `html`, `text`                               |
//! | `sms`     | `text`*                                                  |
//! | `push`    | `title`*, `body`*, `data` (JSON)                         |
//! | `chat`    | `text`*, `blocks` (JSON)                                 |
//! | `in-app`  | `headline`*, `body`*, `action_label` + `action_url` pair |
//! | `webhook` | `body`* (JSON)                                           |
//!
//! Rendering uses minijinja with strict undefined behaviour: a variable the data lacks is a
//! `missing-variable` error. `html.j2` is HTML-escaped; the JSON fields (`webhook/body.j2`,
//! `push/data.j2`, `chat/blocks.j2`) are JSON-escaped, so `{{ value }}` there writes a JSON
//! value (quotes included). One trailing newline is trimmed from every rendered field. The
//! content rules of each channel are the host's to check, not this plugin's.
//!
//! Within one instance, loaded templates are cached: the host usually runs
//! each call on a fresh instance (so every call reads the files), and an instance it keeps
//! for several calls is recycled after a bounded number of them, which bounds how long a
//! changed template file can go unseen.

wit_bindgen::generate!({
    world: "renderer",
    path: "../../wit/plugin@0.1.0",
});

use std::collections::BTreeSet;
use std::io;
use std::sync::OnceLock;

use belfry::plugin::types::{
    Channel, ChatContent, Content, EmailContent, InAppAction, InAppContent, PushContent,
    RenderRequest, SmsContent, WebhookContent,
};
use exports::belfry::plugin::rendering::{Guest, RenderError};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// Where the manifest's `files` grant mounts the templates directory.
const ROOT: &str = "/templates";

struct Templates;

impl Guest for Templates {
    fn render(request: RenderRequest) -> Result<Content, RenderError> {
        let channel = channel_dir(request.channel);
        let template = request.template.as_str();
        check_template_name(template)?;
        let data: Value = serde_json::from_str(&request.data)
            .map_err(|err| RenderError::Failed(format!("render data is not valid JSON: {err}")))?;
        if !data.is_object() {
            return Err(RenderError::Failed(
                "render data must be a JSON object".to_string(),
            ));
        }

        let renderer = Renderer::new(template, channel, data);
        let content = match request.channel {
            Channel::Email => Content::Email(EmailContent {
                subject: renderer.required("subject")?,
                html: renderer.optional("html")?,
                text: renderer.optional("text")?,
            }),
            Channel::Sms => Content::Sms(SmsContent {
                text: renderer.required("text")?,
            }),
            Channel::Push => Content::Push(PushContent {
                title: renderer.required("title")?,
                body: renderer.required("body")?,
                data: renderer.optional("data")?,
            }),
            Channel::Chat => Content::Chat(ChatContent {
                text: renderer.required("text")?,
                blocks: renderer.optional("blocks")?,
            }),
            Channel::InApp => {
                let headline = renderer.required("headline")?;
                let body = renderer.required("body")?;
                let primary_action = match (
                    renderer.exists("action_label")?,
                    renderer.exists("action_url")?,
                ) {
                    (false, false) => None,
                    (true, true) => Some(InAppAction {
                        label: renderer.required("action_label")?,
                        url: renderer.required("action_url")?,
                    }),
                    (true, false) => return Err(renderer.not_found("action_url")),
                    (false, true) => return Err(renderer.not_found("action_label")),
                };
                Content::InApp(InAppContent {
                    headline,
                    body,
                    primary_action,
                })
            }
            Channel::Webhook => Content::Webhook(WebhookContent {
                body: renderer.required("body")?,
            }),
        };
        Ok(content)
    }
}

/// Renders the fields of one template's channel variant.
struct Renderer {
    env: &'static Environment<'static>,
    /// `<template>/<channel>`, relative to [`ROOT`].
    prefix: String,
    data: Value,
}

impl Renderer {
    fn new(template: &str, channel: &str, data: Value) -> Self {
        Renderer {
            env: environment(),
            prefix: format!("{template}/{channel}"),
            data,
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}/{field}.j2", self.prefix)
    }

    fn path(&self, field: &str) -> String {
        format!("{ROOT}/{}", self.name(field))
    }

    /// Whether the field's template exists. Loading it (one open and read, then cached in the
    /// environment) is cheaper through WASI than a `stat` first and a read after.
    fn exists(&self, field: &str) -> Result<bool, RenderError> {
        match self.env.get_template(&self.name(field)) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == ErrorKind::TemplateNotFound => Ok(false),
            // A syntax error: the file is there; rendering reports the error.
            Err(_) => Ok(true),
        }
    }

    /// The most useful "not found": a missing template, channel variant, or field file.
    fn not_found(&self, field: &str) -> RenderError {
        let (template, channel) = self.prefix.split_once('/').unwrap_or((&self.prefix, ""));
        let template_dir = format!("{ROOT}/{template}");
        let channel_dir = format!("{template_dir}/{channel}");
        let message = match (is_dir(&template_dir), is_dir(&channel_dir)) {
            (Err(e), _) | (_, Err(e)) => return e,
            (Ok(false), _) => {
                format!("template `{template}` not found: no directory {template_dir}")
            }
            (Ok(true), Ok(false)) => format!(
                "template `{template}` has no {channel} variant: no directory {channel_dir}"
            ),
            (Ok(true), Ok(true)) => {
                format!("required template file {} not found", self.path(field))
            }
        };
        RenderError::TemplateNotFound(message)
    }

    fn required(&self, field: &str) -> Result<String, RenderError> {
        if !self.exists(field)? {
            return Err(self.not_found(field));
        }
        self.render(field)
    }

    fn optional(&self, field: &str) -> Result<Option<String>, RenderError> {
        if !self.exists(field)? {
            return Ok(None);
        }
        self.render(field).map(Some)
    }

    fn render(&self, field: &str) -> Result<String, RenderError> {
        let name = self.name(field);
        let rendered = self
            .env
            .get_template(&name)
            .and_then(|template| template.render(&self.data))
            .map_err(|err| self.error(&name, err))?;
        Ok(trim_one_newline(rendered))
    }

    fn error(&self, field_name: &str, err: minijinja::Error) -> RenderError {
        match err.kind() {
            ErrorKind::UndefinedError => {
                RenderError::MissingVariable(self.describe_undefined(field_name, &err))
            }
            ErrorKind::TemplateNotFound => {
                RenderError::TemplateNotFound(format!("{ROOT}/{field_name}: {}", error_chain(&err)))
            }
            _ => RenderError::Failed(format!("{ROOT}/{field_name}: {}", error_chain(&err))),
        }
    }

    /// Names the variable(s) behind an undefined-value error: minijinja reports only
    /// "undefined value" and a line, so compare what the template uses with the data.
    fn describe_undefined(&self, field_name: &str, err: &minijinja::Error) -> String {
        let failing = err.name().unwrap_or(field_name).to_string();
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

fn auto_escape(name: &str) -> AutoEscape {
    let field = name.rsplit('/').next().unwrap_or(name);
    let channel = name.rsplit('/').nth(1).unwrap_or("");
    match (channel, field) {
        ("email", "html.j2") => AutoEscape::Html,
        ("webhook", "body.j2") | ("push", "data.j2") | ("chat", "blocks.j2") => AutoEscape::Json,
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

fn is_dir(path: &str) -> Result<bool, RenderError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(RenderError::Failed(format!("cannot read {path}: {err}"))),
    }
}

/// The instance's minijinja environment; it caches every template it loads.
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // We trim exactly one trailing newline from the output ourselves.
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(auto_escape);
        // Templates (and anything they include) load from the granted directory, by
        // '/'-separated names relative to it.
        env.set_loader(|name| {
            if !is_safe_relative(name) {
                return Ok(None);
            }
            match std::fs::read_to_string(format!("{ROOT}/{name}")) {
                Ok(source) => Ok(Some(source)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("cannot read {ROOT}/{name}: {err}"),
                )),
            }
        });
        env
    })
}

/// A template name is one path segment: no separators, no `.`/`..`.
fn check_template_name(template: &str) -> Result<(), RenderError> {
    if template.is_empty()
        || template == "."
        || template == ".."
        || template.contains(['/', '\\', '\0'])
    {
        return Err(RenderError::TemplateNotFound(format!(
            "invalid template name {template:?}: it must be one directory name under {ROOT}"
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

fn channel_dir(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Push => "push",
        Channel::Chat => "chat",
        Channel::InApp => "in-app",
        Channel::Webhook => "webhook",
    }
}

export!(Templates);
