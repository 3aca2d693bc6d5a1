//! A plugin package's assets: the read-only files beside its component (a notifier's templates
//! and translations), held in memory once loaded. Plugins read them through the contract's
//! `assets` interface (`wit/plugin@1/host.wit`): a notifier its own, a renderer those of the
//! notifier whose request it renders. Nothing here touches the file system after loading, so
//! no guest path can reach a host file.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The most files one package may carry.
pub const MAX_FILES: usize = 4096;
/// The most bytes all of one package's assets may hold together.
pub const MAX_TOTAL_BYTES: usize = 32 << 20;
/// The longest asset path, in bytes.
pub const MAX_PATH: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssetsError {
    #[error("asset path `{path}`: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("asset `{path}` appears twice")]
    Duplicate { path: String },
    #[error("more than {MAX_FILES} asset files")]
    TooManyFiles,
    #[error("assets hold more than {} MiB", MAX_TOTAL_BYTES >> 20)]
    TooLarge,
    #[error("reading assets at {path}: {message}")]
    Io { path: String, message: String },
}

/// Immutable, cheap to share (`Arc<Assets>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assets {
    files: BTreeMap<String, Arc<[u8]>>,
    total: usize,
}

/// Checks one relative, `/`-separated asset path: no empty, `.` or `..` segment, no leading
/// `/`, no backslash or NUL, at most [`MAX_PATH`] bytes.
pub fn check_path(path: &str) -> Result<(), AssetsError> {
    let bad = |reason| {
        Err(AssetsError::BadPath {
            path: path.chars().take(80).collect(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("is empty");
    }
    if path.len() > MAX_PATH {
        return bad("is longer than 512 bytes");
    }
    if path.contains('\\') || path.contains('\0') {
        return bad("contains a backslash or NUL");
    }
    if path.starts_with('/') {
        return bad("is absolute");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("has an empty, `.` or `..` segment");
    }
    Ok(())
}

impl Assets {
    /// No assets (a plugin without `assets/`).
    pub fn empty() -> Arc<Assets> {
        Arc::new(Assets::default())
    }

    /// From `(path, bytes)` pairs, each path checked, within the bounds above.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Assets, AssetsError> {
        let mut out = Assets::default();
        for (path, bytes) in entries {
            out.insert(path, bytes)?;
        }
        Ok(out)
    }

    fn insert(&mut self, path: String, bytes: Vec<u8>) -> Result<(), AssetsError> {
        check_path(&path)?;
        if self.files.len() >= MAX_FILES {
            return Err(AssetsError::TooManyFiles);
        }
        self.total = self.total.saturating_add(bytes.len());
        if self.total > MAX_TOTAL_BYTES {
            return Err(AssetsError::TooLarge);
        }
        if self.files.insert(path.clone(), bytes.into()).is_some() {
            return Err(AssetsError::Duplicate { path });
        }
        Ok(())
    }

    /// Every regular file under `dir`, by its path relative to `dir`. Symbolic links are
    /// refused rather than followed: a package must not reach outside itself.
    pub fn from_dir(dir: &Path) -> Result<Assets, AssetsError> {
        let mut out = Assets::default();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let io = |e: std::io::Error| AssetsError::Io {
                path: d.display().to_string(),
                message: e.to_string(),
            };
            let mut entries: Vec<_> = std::fs::read_dir(&d)
                .map_err(io)?
                .collect::<Result<_, _>>()
                .map_err(io)?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let path = e.path();
                let ty = e.file_type().map_err(io)?;
                let rel = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|r| r.to_str())
                    .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
                    .ok_or_else(|| AssetsError::BadPath {
                        path: path.display().to_string(),
                        reason: "is not UTF-8",
                    })?;
                if ty.is_symlink() {
                    return Err(AssetsError::BadPath {
                        path: rel,
                        reason: "is a symbolic link",
                    });
                } else if ty.is_dir() {
                    stack.push(path);
                } else if ty.is_file() {
                    let len = e.metadata().map_err(io)?.len() as usize;
                    if out.total.saturating_add(len) > MAX_TOTAL_BYTES {
                        return Err(AssetsError::TooLarge);
                    }
                    let bytes = std::fs::read(&path).map_err(io)?;
                    out.insert(rel, bytes)?;
                }
            }
        }
        Ok(out)
    }

    /// The bytes at `path`; `None` for a missing file or a path [`check_path`] refuses.
    pub fn read(&self, path: &str) -> Option<Arc<[u8]>> {
        check_path(path).ok()?;
        self.files.get(path).cloned()
    }

    /// Every path starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.files
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn total_bytes(&self) -> usize {
        self.total
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), &**b))
    }

    /// SHA-256 over every path and its bytes, in order: part of a package's identity.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (p, b) in &self.files {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_escape_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a\0b",
        ] {
            assert!(check_path(p).is_err(), "{p:?} was accepted");
        }
        check_path("templates/welcome/email/subject.j2").unwrap();
    }

    #[test]
    fn read_and_list() {
        let a = Assets::from_entries([
            ("templates/a/email/subject.j2".into(), b"hi".to_vec()),
            ("templates/b/sms/text.j2".into(), b"yo".to_vec()),
            ("translations/de.json".into(), b"{}".to_vec()),
        ])
        .unwrap();
        assert_eq!(
            a.read("templates/a/email/subject.j2").as_deref(),
            Some(&b"hi"[..])
        );
        assert_eq!(a.read("../templates/a/email/subject.j2"), None);
        assert_eq!(
            a.list("templates/"),
            vec!["templates/a/email/subject.j2", "templates/b/sms/text.j2"]
        );
        assert_eq!(a.list("").len(), 3);
        assert!(
            Assets::from_entries([("x".into(), vec![]), ("x".into(), vec![])]).is_err(),
            "a duplicate path was accepted"
        );
    }

    #[test]
    fn bounded() {
        let big = vec![0u8; MAX_TOTAL_BYTES / 2 + 1];
        let r = Assets::from_entries([("a".into(), big.clone()), ("b".into(), big)]);
        assert_eq!(r, Err(AssetsError::TooLarge));
    }
}
