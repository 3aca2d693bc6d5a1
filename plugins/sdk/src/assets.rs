//! The files of the plugin's package (`assets/` beside the component): a notifier's templates
//! and translations, read-only. A notifier reads its own; a renderer reads those of the
//! notifier whose request it is rendering. Paths are relative and `/`-separated
//! (`templates/welcome/email/subject.j2`).

pub use crate::notifier_world::belfry::plugin::assets::{list, read};

/// Why an asset could not be read as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetError {
    /// No asset at this path.
    NotFound(String),
    /// The asset is not UTF-8 text.
    NotText(String),
}

impl std::fmt::Display for AssetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssetError::NotFound(path) => write!(f, "no asset `{path}` in the plugin package"),
            AssetError::NotText(path) => write!(f, "asset `{path}` is not UTF-8 text"),
        }
    }
}

impl std::error::Error for AssetError {}

/// The asset at `path` as text: `Ok(None)` when there is none.
pub fn read_string(path: &str) -> Result<Option<String>, AssetError> {
    read(path).map(|bytes| text(path, bytes)).transpose()
}

/// The asset at `path` as text; its absence is an error naming the path.
pub fn require_string(path: &str) -> Result<String, AssetError> {
    read_string(path)?.ok_or_else(|| AssetError::NotFound(path.to_string()))
}

/// The first of `paths` that exists, as text, with the path it came from: how a translation
/// falls back (`subject.de-AT.j2`, `subject.de.j2`, `subject.j2`).
pub fn first_string(paths: &[String]) -> Result<Option<(String, String)>, AssetError> {
    for path in paths {
        if let Some(text) = read_string(path)? {
            return Ok(Some((path.clone(), text)));
        }
    }
    Ok(None)
}

/// The candidate paths for `base.ext` in `locale`, most specific first: for `subject`, `j2`
/// and `de-AT`: `subject.de-AT.j2`, `subject.de.j2`, `subject.j2`. No locale (or a blank one)
/// is just `subject.j2`.
pub fn localized_paths(base: &str, ext: &str, locale: Option<&str>) -> Vec<String> {
    let mut paths = Vec::new();
    if let Some(locale) = locale.map(str::trim).filter(|l| !l.is_empty()) {
        let mut tag = locale.to_string();
        loop {
            paths.push(format!("{base}.{tag}.{ext}"));
            match tag.rfind(['-', '_']) {
                Some(cut) => tag.truncate(cut),
                None => break,
            }
        }
    }
    paths.push(format!("{base}.{ext}"));
    paths
}

fn text(path: &str, bytes: Vec<u8>) -> Result<String, AssetError> {
    String::from_utf8(bytes).map_err(|_| AssetError::NotText(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localized_paths_fall_back_to_the_language_then_the_default() {
        assert_eq!(
            localized_paths("templates/w/email/subject", "j2", Some("de-AT")),
            [
                "templates/w/email/subject.de-AT.j2",
                "templates/w/email/subject.de.j2",
                "templates/w/email/subject.j2"
            ]
        );
        assert_eq!(
            localized_paths("subject", "j2", Some("zh-Hant-TW")),
            [
                "subject.zh-Hant-TW.j2",
                "subject.zh-Hant.j2",
                "subject.zh.j2",
                "subject.j2"
            ]
        );
        assert_eq!(localized_paths("subject", "j2", None), ["subject.j2"]);
        assert_eq!(localized_paths("subject", "j2", Some(" ")), ["subject.j2"]);
    }

    #[test]
    fn errors_name_the_path() {
        assert_eq!(
            text("a.j2", vec![0xff]),
            Err(AssetError::NotText("a.j2".to_string()))
        );
        assert_eq!(
            AssetError::NotFound("t/x.j2".to_string()).to_string(),
            "no asset `t/x.j2` in the plugin package"
        );
    }
}
