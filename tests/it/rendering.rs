//! Rendering from packages (issue 23). The bundled `templates` renderer reads the templates of
//! the notifier whose request it renders, from that notifier's package, and nothing else; it
//! picks a translation by the request's locale (`de-AT` → `de` → the default); a notifier
//! package loaded from a directory or uploaded at runtime renders its own templates with the
//! renderer as built; a notifier that names a renderer in its manifest gets that one, the
//! others the default. Pure rendering runs without a database; what goes through the store
//! runs on SQLite and PostgreSQL.

use crate::common::{Backend, cache_dir, world_with};
use belfry::TriggerRequest;
use belfry::host::content::{Channel, Content, RenderRequest};
use belfry::host::plugins::assets::Assets;
use belfry::host::plugins::package::Package;
use belfry::host::plugins::{self, BundledPlugin, Plugin, PluginRuntime, Reuse, RuntimeConfig};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn bundled(name: &str) -> &'static BundledPlugin {
    belfry::BUNDLED
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no bundled plugin {name}"))
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..Default::default()
    })
    .unwrap()
}

async fn load_bundled(runtime: &PluginRuntime) -> Vec<Plugin> {
    plugins::load_all(runtime, belfry::BUNDLED, None)
        .await
        .unwrap()
        .plugins
}

fn find<'a>(plugins: &'a [Plugin], name: &str) -> &'a Plugin {
    plugins
        .iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("{name} is not loaded"))
}

/// `manifest` with `key` set to `value` (its other keys as they are).
fn with_key(manifest: &str, key: &str, value: &str) -> String {
    let mut t: toml::Table = toml::from_str(manifest).unwrap();
    t.insert(key.into(), toml::Value::String(value.into()));
    toml::to_string(&t).unwrap()
}

fn assets(files: &[(&str, &str)]) -> Assets {
    Assets::from_entries(
        files
            .iter()
            .map(|(p, s)| (p.to_string(), s.as_bytes().to_vec())),
    )
    .unwrap()
}

/// Writes `package` as a package folder: `manifest.toml`, `plugin.wasm`, `assets/**`.
fn write_dir(dir: &Path, package: &Package) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.toml"), &package.manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), &package.component).unwrap();
    for (path, bytes) in package.assets.iter() {
        let file = dir.join("assets").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
}

fn welcome_request(channel: Channel, locale: Option<&str>) -> RenderRequest {
    RenderRequest {
        template: "welcome".into(),
        channel,
        data: json!({"name": "Ada", "app_name": "belfry"}).to_string(),
        locale: locale.map(str::to_string),
    }
}

async fn render(
    runtime: &PluginRuntime,
    renderer: &Plugin,
    request: &RenderRequest,
    assets: &Arc<Assets>,
) -> Result<Content, plugins::CallError> {
    runtime
        .render(renderer, request, assets, Reuse::Fresh)
        .await
}

fn email(content: Content) -> (String, Option<String>, Option<String>) {
    match content {
        Content::Email {
            subject,
            html,
            text,
        } => (subject, html, text),
        other => panic!("expected email content, got {other:?}"),
    }
}

/// The welcome email has a German translation in the welcome package: `de-AT` and `de` (in
/// any case, with `_`) get it, part by part; a locale with no translation, a malformed one and
/// none get the English default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_locale_picks_the_translation_with_a_fallback() {
    let runtime = runtime();
    let loaded = load_bundled(&runtime).await;
    let renderer = find(&loaded, "templates");
    let welcome = find(&loaded, "welcome");
    for locale in ["de-AT", "de", "DE_at", "de-CH-1996"] {
        let request = welcome_request(Channel::Email, Some(locale));
        let (subject, html, text) = email(
            render(&runtime, renderer, &request, welcome.assets())
                .await
                .unwrap(),
        );
        assert_eq!(subject, "Willkommen bei belfry", "{locale}");
        let text = text.unwrap();
        assert!(
            text.starts_with("Hallo Ada,\n\nwillkommen bei belfry!"),
            "{locale}: {text}"
        );
        assert!(html.unwrap().contains("<html lang=\"de\">"), "{locale}");
    }
    for locale in [Some("ja-JP"), Some("fr"), Some("not a tag!"), None] {
        let request = welcome_request(Channel::Email, locale);
        let (subject, _, text) = email(
            render(&runtime, renderer, &request, welcome.assets())
                .await
                .unwrap(),
        );
        assert_eq!(subject, "Welcome to belfry", "{locale:?}");
        assert!(text.unwrap().starts_with("Hi Ada,"), "{locale:?}");
    }
    // The in-app message is translated too.
    let request = welcome_request(Channel::InApp, Some("de-AT"));
    let Content::InApp { headline, .. } = render(&runtime, renderer, &request, welcome.assets())
        .await
        .unwrap()
    else {
        panic!("in-app content")
    };
    assert_eq!(headline, "Willkommen bei belfry, Ada");
}

/// Rendering for one notifier, the renderer sees that notifier's package and nothing else:
/// another notifier's template, a path out of `templates/` or to a host file, and its own
/// package's files are all "template not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_reads_only_the_calling_notifiers_assets() {
    let runtime = runtime();
    let loaded = load_bundled(&runtime).await;
    let renderer = find(&loaded, "templates");
    let welcome = find(&loaded, "welcome");
    let comment = find(&loaded, "comment");
    let request = welcome_request(Channel::Email, None);

    // Control: the welcome template renders from the welcome package.
    render(&runtime, renderer, &request, welcome.assets())
        .await
        .unwrap();
    // Rendering for `comment`, welcome's template is not there.
    let not_found = |e: plugins::CallError| {
        assert_eq!(e.reason.as_str(), "plugin_error", "{e}");
        assert!(e.message.contains("template not found"), "{e}");
        e.message
    };
    let why = not_found(
        render(&runtime, renderer, &request, comment.assets())
            .await
            .unwrap_err(),
    );
    assert!(why.contains("welcome"), "{why}");
    // Nor on a warm instance that rendered welcome's template for the same tenant just before:
    // nothing read for one call is kept for the next.
    runtime
        .render(renderer, &request, welcome.assets(), Reuse::Tenant("t"))
        .await
        .unwrap();
    assert_eq!(runtime.warm_instances(), 1, "the instance is kept warm");
    not_found(
        runtime
            .render(renderer, &request, comment.assets(), Reuse::Tenant("t"))
            .await
            .unwrap_err(),
    );
    // Nor with no assets at all: the renderer does not fall back to any package of its own.
    not_found(
        render(&runtime, renderer, &request, &Assets::empty())
            .await
            .unwrap_err(),
    );

    // Names that try to leave the notifier's templates.
    for template in ["../welcome", "welcome/../welcome", "/etc", "..", ""] {
        let request = RenderRequest {
            template: template.into(),
            ..welcome_request(Channel::Email, None)
        };
        not_found(
            render(&runtime, renderer, &request, welcome.assets())
                .await
                .unwrap_err(),
        );
    }
    // Includes that try to reach another package's files or the host's.
    let sneaky = Arc::new(assets(&[
        (
            "templates/t/sms/text.j2",
            "{% include '../../welcome/email/subject.j2' %}",
        ),
        ("templates/u/sms/text.j2", "{% include '/etc/hostname' %}"),
        (
            "templates/v/sms/text.j2",
            "{% include 'welcome/email/subject.j2' %}",
        ),
    ]));
    for template in ["t", "u", "v"] {
        let request = RenderRequest {
            template: template.into(),
            channel: Channel::Sms,
            data: "{}".into(),
            locale: None,
        };
        not_found(
            render(&runtime, renderer, &request, &sneaky)
                .await
                .unwrap_err(),
        );
    }
}

/// A digest is the host's own request: its `digest` template is no notifier's and ships in the
/// renderer's package, whose assets the host hands over for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_template_is_the_renderers_own() {
    let runtime = runtime();
    let loaded = load_bundled(&runtime).await;
    let renderer = find(&loaded, "templates");
    let comment = find(&loaded, "comment");
    let request = RenderRequest {
        template: "digest".into(),
        channel: Channel::Email,
        data: json!({
            "count": 3, "first": [{"summary": "one"}], "more": 1, "last": [{"summary": "three"}],
            "rule": "r", "group": "g", "window": {"start": "a", "end": "b"},
        })
        .to_string(),
        locale: None,
    };
    let (subject, _, text) = email(
        render(&runtime, renderer, &request, renderer.assets())
            .await
            .unwrap(),
    );
    assert_eq!(subject, "3 new notifications");
    let text = text.unwrap();
    assert!(
        text.contains("- one") && text.contains("… and 1 more") && text.contains("- three"),
        "{text}"
    );
    // A notifier's package does not carry it.
    assert!(
        render(&runtime, renderer, &request, comment.assets())
            .await
            .is_err()
    );
}

/// The bundled welcome notifier's component in a package of its own with templates no bundled
/// package has: the in-app headline says which package rendered it.
fn welcome_package(version: &str, headline: &str) -> Package {
    let welcome = bundled("welcome");
    Package {
        manifest: with_key(welcome.manifest, "version", version),
        component: welcome.wasm.to_vec(),
        assets: assets(&[
            ("templates/welcome/in-app/headline.j2", headline),
            (
                "templates/welcome/in-app/body.j2",
                "Packaged for {{ user_id }}.",
            ),
        ]),
    }
}

async fn welcome_headline(e: &belfry::Engine, user: &str) -> (String, String) {
    let outcome = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"id": user, "name": "Ada"}}),
        ))
        .await
        .unwrap();
    e.dispatch_event(&outcome.event_id).await.unwrap();
    let after = e.event(&outcome.event_id).await.unwrap();
    let d = &after.notifications[0].deliveries[0];
    assert_eq!(d.status, "succeeded", "{d:?}");
    let items = e.inbox("default", user).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    (items[0].headline.clone(), d.rendered_by.clone().unwrap())
}

/// A notifier package under `--plugins`, and one uploaded while the engine runs, render their
/// own templates with the `templates` renderer as it was built.
async fn a_notifier_package_loaded_at_runtime_renders_its_own_templates(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    write_dir(
        &dir.path().join("welcome"),
        &welcome_package("7.0.0", "From the folder, {{ name }}"),
    );
    let plugins_dir = dir.path().to_path_buf();
    let w = world_with(b, |c| c.plugins_dir = Some(plugins_dir)).await;
    let e = &w.engine;
    let renderer = e.registry().renderer().unwrap().reference().to_string();
    assert!(renderer.starts_with("templates@"), "{renderer}");

    let (headline, rendered_by) = welcome_headline(e, "ada").await;
    assert_eq!(headline, "From the folder, Ada");
    assert_eq!(rendered_by, renderer);

    let (loaded, replaced) = e
        .load_package(&welcome_package("8.0.0", "Uploaded, {{ name }}"), "test")
        .await
        .unwrap();
    assert_eq!(loaded.manifest().version, "8.0.0");
    assert!(replaced.unwrap().manifest().version == "7.0.0");
    let (headline, rendered_by) = welcome_headline(e, "bea").await;
    assert_eq!(headline, "Uploaded, Ada");
    assert_eq!(rendered_by, renderer, "the renderer was not rebuilt");
}

/// Two renderers loaded: the welcome notifier's manifest names `fancy` and gets it; the
/// comment notifier names none and gets the default, `templates`.
async fn a_notifier_naming_a_renderer_gets_it_and_the_others_the_default(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let templates = bundled("templates");
    write_dir(
        &dir.path().join("fancy"),
        &Package {
            manifest: with_key(templates.manifest, "name", "fancy"),
            component: templates.wasm.to_vec(),
            assets: Assets::default(),
        },
    );
    let welcome = bundled("welcome");
    write_dir(
        &dir.path().join("welcome"),
        &Package {
            manifest: with_key(welcome.manifest, "renderer", "fancy"),
            component: welcome.wasm.to_vec(),
            assets: Assets::from_entries(
                welcome
                    .assets
                    .iter()
                    .map(|(p, bytes)| (p.to_string(), bytes.to_vec())),
            )
            .unwrap(),
        },
    );
    let plugins_dir = dir.path().to_path_buf();
    let w = world_with(b, |c| c.plugins_dir = Some(plugins_dir)).await;
    let e = &w.engine;
    let registry = e.registry();
    let welcome_plugin = registry.notifier("welcome").unwrap();
    let comment_plugin = registry.notifier("comment").unwrap();
    assert_eq!(
        registry.renderer_for(welcome_plugin).unwrap().name(),
        "fancy"
    );
    assert_eq!(
        registry.renderer_for(comment_plugin).unwrap().name(),
        "templates"
    );

    let (headline, rendered_by) = welcome_headline(e, "ada").await;
    assert_eq!(headline, "Welcome to belfry, Ada");
    assert!(rendered_by.starts_with("fancy@"), "{rendered_by}");

    let outcome = e
        .trigger(&TriggerRequest::new(
            "comment",
            json!({
                "thread": {"id": "t1", "title": "Plans"},
                "author": {"name": "Bo", "id": "bo"},
                "text": "Looks good",
                "followers": [{"id": "cy"}],
            }),
        ))
        .await
        .unwrap();
    e.dispatch_event(&outcome.event_id).await.unwrap();
    let after = e.event(&outcome.event_id).await.unwrap();
    let deliveries: Vec<_> = after
        .notifications
        .iter()
        .flat_map(|n| &n.deliveries)
        .collect();
    assert!(!deliveries.is_empty());
    for d in deliveries {
        assert_eq!(d.status, "succeeded", "{d:?}");
        let by = d.rendered_by.as_deref().unwrap();
        assert!(by.starts_with("templates@"), "{by}");
    }
}

/// The bundled welcome notifier passes the user's locale to its render requests, so a trigger
/// for a `de-AT` user delivers the German translation end to end, and one without a locale
/// the default.
async fn a_trigger_for_a_german_speaking_user_is_delivered_in_german(b: Backend) {
    let w = world_with(b, |_| {}).await;
    let e = &w.engine;
    for (user, locale, expected) in [
        ("de-user", Some("de-AT"), "Willkommen bei belfry, Ada"),
        ("en-user", None, "Welcome to belfry, Ada"),
    ] {
        let mut u = json!({"id": user, "name": "Ada"});
        if let Some(l) = locale {
            u["locale"] = json!(l);
        }
        let outcome = e
            .trigger(&TriggerRequest::new("welcome", json!({ "user": u })))
            .await
            .unwrap();
        e.dispatch_event(&outcome.event_id).await.unwrap();
        let items = e.inbox("default", user).await.unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].headline, expected, "{locale:?}");
    }
}

on_both_backends!(
    a_trigger_for_a_german_speaking_user_is_delivered_in_german,
    a_notifier_package_loaded_at_runtime_renders_its_own_templates,
    a_notifier_naming_a_renderer_gets_it_and_the_others_the_default,
);
