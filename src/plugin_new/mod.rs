//! `belfry plugin new`: a plugin project to start from, one that builds, passes
//! `belfry plugin check` and `belfry plugin test --cases tests` as written.
//!
//! The Rust projects use the guest SDK of a belfry checkout by path; the JavaScript and
//! Python ones are the examples in `examples/plugins/` renamed, built by the SDK's tools.

use crate::global::Global;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Write a new plugin project (manifest, source, build.sh, README, tests/cases) to start from.
#[derive(Args)]
pub(crate) struct NewArgs {
    /// The plugin's name: a-z, 0-9 and '-', starting with a letter, at most 64 characters.
    name: String,
    /// What the plugin is.
    #[arg(long, value_enum)]
    kind: Kind,
    /// The language it is written in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to write it (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A belfry checkout holding the guest SDKs (plugins/sdk, sdk/js, sdk/python). Default:
    /// the checkout this belfry was built from.
    #[arg(long)]
    sdk: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Notifier,
    Renderer,
    Adapter,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    Rust,
    Js,
    Python,
}

impl Kind {
    fn manifest_kind(self) -> &'static str {
        match self {
            Kind::Notifier => "notifier",
            Kind::Renderer => "renderer",
            Kind::Adapter => "channel-adapter",
        }
    }
}

pub(crate) fn run(_g: &Global, args: NewArgs) -> Result<()> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        let mut entries = std::fs::read_dir(&dir)
            .with_context(|| format!("--dir {}: not a readable folder", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: refusing to write a project into it",
                dir.display()
            );
        }
    }
    let sdk = args
        .sdk
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let sdk = std::path::absolute(&sdk)
        .with_context(|| format!("--sdk {}: cannot make the path absolute", sdk.display()))?;
    let needed = match args.lang {
        Lang::Rust => sdk.join("plugins/sdk/Cargo.toml"),
        Lang::Js => sdk.join("sdk/js/bin/belfry-build-js.mjs"),
        Lang::Python => sdk.join("sdk/python/bin/belfry-build-py"),
    };
    if !needed.is_file() {
        bail!(
            "the SDK at {} has no {} (pass --sdk PATH: a belfry checkout)",
            sdk.display(),
            needed.display()
        );
    }
    let files = match args.lang {
        Lang::Rust => rust_files(args.kind),
        Lang::Js if args.kind == Kind::Notifier => js_files(),
        Lang::Python if args.kind == Kind::Adapter => python_files(),
        _ => bail!(
            "--lang js makes notifiers and --lang python makes adapters for now; \
             --lang rust makes all three kinds"
        ),
    };
    let sdk_text = sdk
        .to_str()
        .context("the SDK path is not UTF-8 (it is written into build.sh)")?;
    let fill = |text: &str| {
        text.replace("__NAME__", &args.name)
            .replace("__CRATE__", &args.name.replace('-', "_"))
            .replace("__KIND__", args.kind.manifest_kind())
            .replace("__SDK__", sdk_text)
            .replace("invoice-due", &args.name)
            .replace("mailrelay", &args.name)
    };
    for (path, text) in files.iter().chain(common_files(args.lang).iter()) {
        let path = dir.join(fill(path));
        write(&path, &fill(text))?;
    }
    make_executable(&dir.join("build.sh"))?;
    println!(
        "wrote {} ({} {} in {})\nnext: cd {} && ./build.sh && belfry plugin check package && belfry plugin test package --cases tests",
        dir.display(),
        args.kind.manifest_kind(),
        args.name,
        match args.lang {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
        },
        dir.display()
    );
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("plugin name {name:?}: use 1 to 64 of a-z, 0-9 and '-', starting with a letter");
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

type Files = Vec<(&'static str, &'static str)>;

fn common_files(lang: Lang) -> Files {
    let ignore = match lang {
        Lang::Rust => "/target/\n/package/\n",
        Lang::Js => "/package/\n/target/\n/node_modules/\n",
        Lang::Python => "/package/\n/target/\n__pycache__/\n",
    };
    vec![
        (".gitignore", ignore),
        ("README.md", include_str!("README.md")),
    ]
}

fn rust_files(kind: Kind) -> Files {
    let mut files: Files = vec![
        ("Cargo.toml", include_str!("rust/Cargo.toml.in")),
        // The checkout's lock file: the versions the SDK is built and tested with (cargo keeps
        // only the entries this project uses).
        ("Cargo.lock", include_str!("../../plugins/Cargo.lock")),
        (
            ".cargo/config.toml",
            "[build]\ntarget = \"wasm32-wasip2\"\n",
        ),
        ("build.sh", include_str!("rust/build.sh")),
    ];
    match kind {
        Kind::Notifier => files.extend([
            ("src/lib.rs", include_str!("rust/notifier.rs")),
            ("manifest.toml", include_str!("rust/notifier.toml")),
            ("assets/templates/__NAME__/email/subject.j2", "Hello {{ name }}\n"),
            (
                "assets/templates/__NAME__/email/text.j2",
                "Hi {{ name }},\n\nthis is __NAME__ speaking.\n",
            ),
            ("assets/templates/__NAME__/in-app/headline.j2", "Hello {{ name }}\n"),
            ("assets/templates/__NAME__/in-app/body.j2", "This is __NAME__ speaking.\n"),
            (
                "tests/cases/no-user/input.json",
                "{\"function\": \"recipients\", \"input\": {\"payload\": {\"app\": \"x\"}}}\n",
            ),
            (
                "tests/cases/no-user/error.json",
                "{\"reason\": \"plugin_error\", \"contains\": \"user\"}\n",
            ),
        ]),
        Kind::Renderer => files.extend([
            ("src/lib.rs", include_str!("rust/renderer.rs")),
            ("manifest.toml", include_str!("rust/plain.toml")),
            (
                "tests/cases/unknown-template/input.json",
                "{\"function\": \"render\", \"input\": {\"template\": \"no-such-template\", \"channel\": \"email\", \"data\": {}}}\n",
            ),
            ("tests/cases/unknown-template/error.json", "{\"reason\": \"plugin_error\"}\n"),
        ]),
        Kind::Adapter => files.extend([
            ("src/lib.rs", include_str!("rust/adapter.rs")),
            ("manifest.toml", include_str!("rust/adapter.toml")),
            (
                "tests/cases/no-address/input.json",
                "{\"function\": \"send\", \"input\": {\"recipient\": {\"id\": \"u1\"}, \"content\": {\"channel\": \"sms\", \"text\": \"hi\"}}}\n",
            ),
            (
                "tests/cases/no-address/expected.json",
                "{\"error\": {\"kind\": \"permanent\", \"message\": \"recipient u1 has no address for sms\"}}\n",
            ),
        ]),
    }
    files
}

/// The JavaScript example, renamed: `invoice-due` becomes the plugin's name.
fn js_files() -> Files {
    vec![
        (
            "manifest.toml",
            include_str!("../../examples/plugins/js-notifier/manifest.toml"),
        ),
        (
            "src/index.js",
            include_str!("../../examples/plugins/js-notifier/src/index.js"),
        ),
        (
            "assets/templates/__NAME__/email/html.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/email/html.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/email/subject.de.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/email/subject.de.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/email/subject.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/email/subject.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/email/text.de.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/email/text.de.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/email/text.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/email/text.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/in-app/body.de.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/in-app/body.de.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/in-app/body.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/in-app/body.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/in-app/headline.de.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/in-app/headline.de.j2"
            ),
        ),
        (
            "assets/templates/__NAME__/in-app/headline.j2",
            include_str!(
                "../../examples/plugins/js-notifier/assets/templates/invoice-due/in-app/headline.j2"
            ),
        ),
        ("build.sh", include_str!("js/build.sh")),
        (
            "tests/cases/no-invoice/input.json",
            "{\"function\": \"recipients\", \"input\": {\"payload\": {\"customers\": []}}}\n",
        ),
        (
            "tests/cases/no-invoice/error.json",
            "{\"reason\": \"plugin_error\"}\n",
        ),
    ]
}

/// The Python example, renamed: `mailrelay` becomes the plugin's name.
fn python_files() -> Files {
    vec![
        (
            "manifest.toml",
            include_str!("../../examples/plugins/python-adapter/manifest.toml"),
        ),
        (
            "app.py",
            include_str!("../../examples/plugins/python-adapter/app.py"),
        ),
        ("build.sh", include_str!("python/build.sh")),
        (
            "tests/cases/no-address/input.json",
            "{\"function\": \"send\", \"input\": {\"recipient\": {\"id\": \"u1\"}, \"content\": {\"channel\": \"email\", \"subject\": \"s\", \"text\": \"t\"}}}\n",
        ),
        (
            "tests/cases/no-address/expected.json",
            "{\"error\": {\"kind\": \"permanent\", \"message\": \"recipient u1 has no email address\"}}\n",
        ),
    ]
}
