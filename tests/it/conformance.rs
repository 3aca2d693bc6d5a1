//! `belfry plugin test`: every first-party plugin passes its world's conformance suite (with
//! its cases folder, `plugins/NAME/tests`, where it has one), and a failing case or plugin is
//! reported as failing, with a readable diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A bundled plugin written out as a package folder (manifest.toml, plugin.wasm, assets/).
fn package(root: &Path, name: &str) -> PathBuf {
    let b = belfry::BUNDLED
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no bundled plugin {name}"));
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("manifest.toml"), b.manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), b.wasm).unwrap();
    for (path, bytes) in b.assets {
        let to = dir.join("assets").join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    dir
}

fn plugin_test(root: &Path, package: &Path, cases: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_belfry"));
    cmd.env(
        "BELFRY_DATABASE_URL",
        format!("sqlite://{}", root.join("x.db").display()),
    )
    .env_remove("BELFRY_PLUGINS")
    .env_remove("RUST_LOG")
    .args(["plugin", "test"])
    .arg(package);
    if let Some(c) = cases {
        cmd.arg("--cases").arg(c);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_first_party_plugin_passes() {
    let root = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    // Side by side: an adapter's no-answer case waits out its own timeout.
    let runs: Vec<_> = belfry::BUNDLED
        .iter()
        .map(|b| {
            let pkg = package(root.path(), b.name);
            let cases = source.join(b.name).join("tests");
            let root = root.path().to_path_buf();
            std::thread::spawn(move || {
                let o = plugin_test(&root, &pkg, cases.is_dir().then_some(cases.as_path()));
                (pkg, o)
            })
        })
        .collect();
    let mut provider_checked = 0;
    for run in runs {
        let (pkg, o) = run.join().unwrap();
        assert!(o.status.success(), "{}: {}", pkg.display(), text(&o));
        let out = text(&o);
        assert!(!out.contains("fail "), "{out}");
        if out.contains("pass provider  429") {
            provider_checked += 1;
        }
    }
    // resend, twilio, ntfy, slack and webhook meet the fake provider.
    assert_eq!(provider_checked, 5);
}

#[test]
fn a_case_that_does_not_match_shows_where() {
    let root = tempfile::tempdir().unwrap();
    let pkg = package(root.path(), "welcome");
    let cases = root.path().join("cases");
    let case = cases.join("cases").join("wrong-template");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("input.json"),
        r#"{"function": "build", "input": {"payload": {"user": {"id": "ada", "email": "a@example.com"}},
            "recipient": {"id": "ada", "email": "a@example.com"}, "channel": "email"}}"#,
    )
    .unwrap();
    std::fs::write(
        case.join("expected.json"),
        r#"{"channel": "email", "template": "goodbye", "locale": null, "data": "{}"}"#,
    )
    .unwrap();
    let o = plugin_test(root.path(), &pkg, Some(&cases));
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("fail cases     wrong-template"), "{out}");
    assert!(
        out.contains(r#"$.template: expected "goodbye", got "welcome""#),
        "{out}"
    );
}

#[test]
fn a_wrong_mapping_or_signature_fails_its_check() {
    let root = tempfile::tempdir().unwrap();
    let pkg = package(root.path(), "resend");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/resend/tests");
    let cases = root.path().join("resend-cases");
    std::fs::create_dir_all(&cases).unwrap();
    // The provider's success answer without the id Resend gives: the send cannot name its
    // message, and the 2xx check says so. A secret the sample was not signed with: the
    // signed request is refused, and the check for it fails.
    let spec = std::fs::read_to_string(source.join("conformance.toml"))
        .unwrap()
        .replace(r#"ok_body = '{"id": "re_123"}'"#, "ok_body = '{}'")
        .replace(
            r#"secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw""#,
            r#"secret = "whsec_c29tZXRoaW5nIGVsc2U=""#,
        );
    std::fs::write(cases.join("conformance.toml"), spec).unwrap();
    std::fs::copy(source.join("webhook.json"), cases.join("webhook.json")).unwrap();
    let o = plugin_test(root.path(), &pkg, Some(&cases));
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("fail provider  2xx"), "{out}");
    assert!(
        out.contains("fail webhook   a validly signed request is accepted"),
        "{out}"
    );
    assert!(out.contains("pass provider  429"), "{out}");
}

#[test]
fn a_plugin_that_traps_on_bad_input_fails_the_contract() {
    let root = tempfile::tempdir().unwrap();
    // A renderer that panics on every render (a hostile fixture, built by build.rs).
    let pkg = Path::new(env!("BELFRY_FIXTURE_PLUGINS_DIR")).join("panic.wasm");
    let o = plugin_test(root.path(), &pkg, None);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("fail contract  an unknown template: a typed error, not a trap"),
        "{out}"
    );
    assert!(out.contains("not a typed error"), "{out}");
}
