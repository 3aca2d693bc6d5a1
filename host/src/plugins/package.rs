//! A plugin package: one component, its manifest and its assets (a notifier's templates and
//! translations), the unit that is installed, packed, uploaded and stored.
//!
//! The same three parts take two forms:
//! - a **directory** (`NAME/manifest.toml`, `NAME/plugin.wasm`, `NAME/assets/**`), as an
//!   operator puts it under `--plugins`;
//! - an **archive**, gzip-compressed tar holding the same paths, as `belfry plugin pack`
//!   writes it and `POST /v1/plugins` accepts it (`docs/plugins/packages.md` says why tar).
//!
//! An archive comes from outside, so reading one is bounded before anything is trusted: its
//! compressed size, the bytes it unpacks to (a gzip bomb stops at the bound, not in memory),
//! the number of entries, each entry's size by what it is, and the assets' own bounds
//! ([`assets::MAX_FILES`], [`assets::MAX_TOTAL_BYTES`]). Only regular files and directories are
//! taken (no links, devices or sparse files), every path is checked ([`assets::check_path`]),
//! and anything but exactly one manifest, exactly one component and files under `assets/` is
//! refused, each with an error naming the entry. Nothing is written to disk.

use super::assets::{self, Assets, AssetsError};
use std::cell::Cell;
use std::io::{Read, Write};
use std::path::Path;
use std::rc::Rc;

/// The manifest's path in a package.
pub const MANIFEST: &str = "manifest.toml";
/// The component's path in a package.
pub const COMPONENT: &str = "plugin.wasm";
/// The folder of the package's assets.
pub const ASSETS: &str = "assets";

/// The largest manifest. Today's longest first-party manifest is under 2 KiB; this leaves room
/// for long descriptions and many grants without letting a "manifest" carry data.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;
/// The largest component. A Python component (componentize-py bundles the interpreter) is
/// about 40 MiB, a JavaScript one about 10 MiB, a Rust one under 1 MiB; 128 MiB is room for
/// those, and a guess.
pub const MAX_COMPONENT_BYTES: u64 = 128 << 20;
/// The most entries an archive may list, extension headers included: for every asset file a
/// long-name header, the file and a directory entry (a `tar` of a folder lists each
/// directory), and room for the two other files.
pub const MAX_ENTRIES: usize = 3 * assets::MAX_FILES + 16;
/// The largest GNU long-name (or long-link) header: a path is at most [`assets::MAX_PATH`]
/// bytes, plus `./assets/`. tar's own reader would take one of any size into memory.
pub const MAX_LONG_NAME_BYTES: u64 = 1024;
/// The largest pax header (`path=…` and the like): real ones are a few hundred bytes.
pub const MAX_PAX_BYTES: u64 = 8 << 10;
/// The most bytes the gzip stream may unpack to: every part at its largest plus tar's own
/// headers and padding (at most three 512-byte blocks per entry, with a GNU long name). A
/// stream that goes on is a bomb and is stopped here, however well it compresses.
pub const MAX_UNPACKED_BYTES: u64 = MAX_MANIFEST_BYTES
    + MAX_COMPONENT_BYTES
    + assets::MAX_TOTAL_BYTES as u64
    + (MAX_ENTRIES as u64 + 2) * 3 * 512;
/// The largest archive [`Limits::default`] accepts, as `belfry serve --max-plugin-bytes`
/// does by default.
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 64 << 20;

/// The bounds an archive is read within. [`Limits::default`] is the constants above with a
/// 64 MiB archive; `belfry serve` sets `archive_bytes` from `--max-plugin-bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The archive's own, compressed, size.
    pub archive_bytes: u64,
    /// What the gzip stream may unpack to (the whole tar stream, headers included).
    pub unpacked_bytes: u64,
    /// Entries of any kind, directories included.
    pub entries: usize,
    pub manifest_bytes: u64,
    pub component_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            archive_bytes: DEFAULT_MAX_ARCHIVE_BYTES,
            unpacked_bytes: MAX_UNPACKED_BYTES,
            entries: MAX_ENTRIES,
            manifest_bytes: MAX_MANIFEST_BYTES,
            component_bytes: MAX_COMPONENT_BYTES,
        }
    }
}

/// Why a package (a directory or an archive) was refused. Each names the entry at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("the archive is {size} bytes, over the limit of {limit}")]
    ArchiveTooLarge { size: u64, limit: u64 },
    #[error(
        "not a gzip-compressed tar archive (a package archive is what `belfry plugin pack` \
         writes, or `tar -czf`)"
    )]
    NotGzip,
    #[error("the archive is damaged: {0}")]
    Corrupt(String),
    #[error(
        "the archive unpacks to more than {limit} bytes; refused as a compression bomb (a \
         package holds at most a {} MiB component and {} MiB of assets)",
        MAX_COMPONENT_BYTES >> 20,
        assets::MAX_TOTAL_BYTES >> 20
    )]
    Bomb { limit: u64 },
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("`{path}` is {size} bytes, over the limit of {limit} for {what}")]
    EntryTooLarge {
        path: String,
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("`{path}` is {kind}: a package holds regular files and directories only")]
    NotRegular { path: String, kind: &'static str },
    #[error("`{path}` is not UTF-8")]
    NotUtf8 { path: String },
    #[error(
        "`{path}` is not part of a package: it holds `{MANIFEST}`, `{COMPONENT}` and files \
         under `{ASSETS}/`, nothing else"
    )]
    Unexpected { path: String },
    #[error("`{path}` appears twice: a package holds exactly one manifest and one component")]
    Twice { path: String },
    #[error("no `{path}`: a package holds exactly one {what}")]
    Missing {
        path: &'static str,
        what: &'static str,
    },
    #[error("`{path}` is a directory, not a file")]
    NotAFile { path: String },
    #[error("`{MANIFEST}` is not UTF-8 text")]
    ManifestNotText,
    #[error(transparent)]
    Assets(#[from] AssetsError),
    #[error("reading {path}: {message}")]
    Io { path: String, message: String },
}

/// A package's three parts, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Package {
    /// The manifest's TOML text.
    pub manifest: String,
    /// The component's bytes.
    pub component: Vec<u8>,
    pub assets: Assets,
}

/// What a path in a package is.
enum Part {
    Manifest,
    Component,
    /// A file under `assets/`, by its path inside `assets/`.
    Asset(String),
}

/// Where a (checked) file path belongs, or why it belongs nowhere.
fn classify(path: &str) -> Result<Part, PackageError> {
    match path {
        MANIFEST => Ok(Part::Manifest),
        COMPONENT => Ok(Part::Component),
        _ => match path.strip_prefix("assets/") {
            Some(rel) => Ok(Part::Asset(rel.to_string())),
            None => Err(PackageError::Unexpected {
                path: path.to_string(),
            }),
        },
    }
}

impl Package {
    /// Reads a package directory: `manifest.toml`, `plugin.wasm` and, if present, `assets/`.
    /// Anything else in it, and any symbolic link, is refused, as in an archive: what an
    /// operator sees in the folder is what is loaded.
    pub fn from_dir(dir: &Path) -> Result<Package, PackageError> {
        let io = |path: &Path, e: std::io::Error| PackageError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| io(dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut manifest = None;
        let mut component = None;
        let mut assets = Assets::default();
        for entry in entries {
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| PackageError::NotUtf8 {
                    path: n.to_string_lossy().into_owned(),
                })?;
            let ty = entry.file_type().map_err(|e| io(&path, e))?;
            if ty.is_symlink() {
                return Err(PackageError::NotRegular {
                    path: name,
                    kind: "a symbolic link",
                });
            }
            match name.as_str() {
                ASSETS if ty.is_dir() => assets = Assets::from_dir(&path)?,
                MANIFEST | COMPONENT if ty.is_dir() => {
                    return Err(PackageError::NotAFile { path: name });
                }
                MANIFEST => {
                    let bytes = read_file(&path, &name, MAX_MANIFEST_BYTES, "a manifest")?;
                    manifest =
                        Some(String::from_utf8(bytes).map_err(|_| PackageError::ManifestNotText)?);
                }
                COMPONENT => {
                    component = Some(read_file(&path, &name, MAX_COMPONENT_BYTES, "a component")?)
                }
                _ => return Err(PackageError::Unexpected { path: name }),
            }
        }
        Ok(Package {
            manifest: manifest.ok_or(PackageError::Missing {
                path: MANIFEST,
                what: "manifest",
            })?,
            component: component.ok_or(PackageError::Missing {
                path: COMPONENT,
                what: "component",
            })?,
            assets,
        })
    }

    /// The package as one archive: gzip-compressed tar with `manifest.toml`, `plugin.wasm`,
    /// then every asset as `assets/PATH` in path order. Deterministic (no times, owners or
    /// modes but 0644), so the same package always packs to the same bytes.
    pub fn to_archive(&self) -> Vec<u8> {
        let mut files: Vec<(String, &[u8])> = vec![
            (MANIFEST.to_string(), self.manifest.as_bytes()),
            (COMPONENT.to_string(), &self.component),
        ];
        files.extend(
            self.assets
                .iter()
                .map(|(p, b)| (format!("{ASSETS}/{p}"), b)),
        );
        write_tar_gz(files)
    }

    /// Reads an archive within `limits`; see the module's documentation for what is refused.
    pub fn from_archive(bytes: &[u8], limits: &Limits) -> Result<Package, PackageError> {
        let mut manifest = None;
        let mut component = None;
        let mut assets = Vec::new();
        unpack(bytes, limits, |path, part, data| {
            match part {
                Part::Manifest => {
                    if manifest.is_some() {
                        return Err(PackageError::Twice { path });
                    }
                    manifest =
                        Some(String::from_utf8(data).map_err(|_| PackageError::ManifestNotText)?);
                }
                Part::Component => {
                    if component.is_some() {
                        return Err(PackageError::Twice { path });
                    }
                    component = Some(data);
                }
                Part::Asset(rel) => assets.push((rel, data)),
            }
            Ok(())
        })?;
        Ok(Package {
            manifest: manifest.ok_or(PackageError::Missing {
                path: MANIFEST,
                what: "manifest",
            })?,
            component: component.ok_or(PackageError::Missing {
                path: COMPONENT,
                what: "component",
            })?,
            assets: Assets::from_entries(assets)?,
        })
    }
}

/// Assets alone as an archive (`assets/PATH` entries only), the form an upload's assets are
/// stored in beside its component and manifest.
pub fn assets_to_archive(assets: &Assets) -> Vec<u8> {
    write_tar_gz(
        assets
            .iter()
            .map(|(p, b)| (format!("{ASSETS}/{p}"), b))
            .collect(),
    )
}

/// Reads what [`assets_to_archive`] wrote, within the default limits; a manifest or a
/// component in it is refused.
pub fn assets_from_archive(bytes: &[u8]) -> Result<Assets, PackageError> {
    let mut assets = Vec::new();
    let limits = Limits {
        archive_bytes: u64::MAX,
        ..Limits::default()
    };
    unpack(bytes, &limits, |path, part, data| match part {
        Part::Asset(rel) => {
            assets.push((rel, data));
            Ok(())
        }
        _ => Err(PackageError::Unexpected { path }),
    })?;
    Ok(Assets::from_entries(assets)?)
}

fn read_file(
    path: &Path,
    name: &str,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, PackageError> {
    let io = |e: std::io::Error| PackageError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(PackageError::EntryTooLarge {
            path: name.to_string(),
            size,
            limit,
            what,
        });
    }
    std::fs::read(path).map_err(io)
}

fn write_tar_gz(files: Vec<(String, &[u8])>) -> Vec<u8> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        // A path over 100 bytes is written as a GNU long-name entry before it. None of the
        // `expect`s here can be reached: every write goes to a `Vec`, which does not fail, and
        // the only thing `tar` refuses besides I/O is an absolute path or one with `..`, which
        // the paths here cannot be (two constants, and asset paths that `Assets` admitted only
        // through `assets::check_path`, whether they came from a folder, an upload or the
        // database).
        tar.append_data(&mut header, &path, data)
            .expect("writing a tar entry into memory");
    }
    let gz = tar.into_inner().expect("finishing a tar stream in memory");
    let mut bytes = gz.finish().expect("finishing a gzip stream in memory");
    bytes.flush().expect("flushing a Vec");
    bytes
}

/// Counts what the gzip stream yields and stops it past `limit`, so a bomb costs at most
/// `limit` bytes of work; `over` tells the caller why the read failed.
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            self.over.set(true);
            return Err(std::io::Error::other("the unpacked size limit was reached"));
        }
        Ok(n)
    }
}

/// Walks the archive's entries within `limits`, handing each regular file to `take` with its
/// checked path and its part.
fn unpack(
    bytes: &[u8],
    limits: &Limits,
    mut take: impl FnMut(String, Part, Vec<u8>) -> Result<(), PackageError>,
) -> Result<(), PackageError> {
    if bytes.len() as u64 > limits.archive_bytes {
        return Err(PackageError::ArchiveTooLarge {
            size: bytes.len() as u64,
            limit: limits.archive_bytes,
        });
    }
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(PackageError::NotGzip);
    }
    let over = Rc::new(Cell::new(false));
    let stream = Bounded {
        inner: flate2::read::GzDecoder::new(bytes),
        read: 0,
        limit: limits.unpacked_bytes,
        over: over.clone(),
    };
    let corrupt = |e: std::io::Error| {
        if over.get() {
            PackageError::Bomb {
                limit: limits.unpacked_bytes,
            }
        } else {
            PackageError::Corrupt(e.to_string())
        }
    };
    let mut archive = tar::Archive::new(stream);
    // Raw: tar's reader would otherwise read long-name and pax headers into memory whatever
    // their size; here each is bounded and applied to the entry after it.
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut count = 0usize;
    let mut asset_bytes = 0u64;
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        count += 1;
        if count > limits.entries {
            return Err(PackageError::TooManyEntries {
                limit: limits.entries,
            });
        }
        let ty = entry.header().entry_type();
        let size = entry.size();
        // Extension headers: bounded, read, and kept for the entry they describe.
        let extension = match ty {
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {
                Some((MAX_LONG_NAME_BYTES, "a long name"))
            }
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => {
                Some((MAX_PAX_BYTES, "a pax header"))
            }
            _ => None,
        };
        if let Some((limit, what)) = extension {
            let names = (&mut long_name, &mut pax_path);
            read_extension(&mut entry, ty, (limit, what), names, &corrupt)?;
            continue;
        }
        let raw = pax_path
            .take()
            .or(long_name.take())
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        long_name = None;
        let path = String::from_utf8(raw).map_err(|e| PackageError::NotUtf8 {
            path: String::from_utf8_lossy(e.as_bytes())
                .chars()
                .take(80)
                .collect(),
        })?;
        // `tar -C DIR -czf x .` names entries `./manifest.toml` and lists `./` itself.
        let path = path.strip_prefix("./").unwrap_or(&path);
        if !regular_file(ty, path)? {
            continue;
        }
        assets::check_path(path)?;
        let part = classify(path)?;
        if let Part::Asset(rel) = &part {
            assets::check_path(rel)?;
        }
        let (limit, what) = match &part {
            Part::Manifest => (limits.manifest_bytes, "a manifest"),
            Part::Component => (limits.component_bytes, "a component"),
            Part::Asset(_) => (
                (assets::MAX_TOTAL_BYTES as u64).saturating_sub(asset_bytes),
                "the assets together",
            ),
        };
        if size > limit {
            return Err(PackageError::EntryTooLarge {
                path: path.to_string(),
                size,
                limit,
                what,
            });
        }
        let data = read_entry(&mut entry, size, &corrupt)?;
        if matches!(part, Part::Asset(_)) {
            asset_bytes += size;
        }
        take(path.to_string(), part, data)?;
    }
    if long_name.is_some() || pax_path.is_some() {
        return Err(PackageError::Corrupt(
            "it ends with a long name or pax header and no entry after it".into(),
        ));
    }
    Ok(())
}

/// Reads an extension header (a GNU long name or link, a pax header), bounded by `bound`,
/// and keeps what it says for the entry after it: a long name or a pax `path`.
fn read_extension<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    ty: tar::EntryType,
    (limit, what): (u64, &'static str),
    (long_name, pax_path): (&mut Option<Vec<u8>>, &mut Option<Vec<u8>>),
    corrupt: &impl Fn(std::io::Error) -> PackageError,
) -> Result<(), PackageError> {
    let size = entry.size();
    if size > limit {
        return Err(PackageError::EntryTooLarge {
            path: String::from_utf8_lossy(&entry.path_bytes())
                .chars()
                .take(80)
                .collect(),
            size,
            limit,
            what,
        });
    }
    let data = read_entry(entry, size, corrupt)?;
    match ty {
        tar::EntryType::GNULongName => {
            let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            *long_name = Some(data[..end].to_vec());
        }
        tar::EntryType::XHeader => {
            for record in tar::PaxExtensions::new(&data) {
                let record = record.map_err(corrupt)?;
                if record.key_bytes() == b"path" {
                    *pax_path = Some(record.value_bytes().to_vec());
                }
            }
        }
        // A long link names a link's target (links are refused below); a pax global
        // header (what `git archive` writes first) is metadata for the whole archive.
        _ => {}
    }
    Ok(())
}

/// Whether an entry at `path` is a regular file to take (`true`) or a directory to pass over
/// (`false`, once its path is checked); anything else (a link, a device) is refused.
fn regular_file(ty: tar::EntryType, path: &str) -> Result<bool, PackageError> {
    let kind = match ty {
        tar::EntryType::Regular | tar::EntryType::Continuous => return Ok(true),
        tar::EntryType::Directory => {
            let dir = path.trim_end_matches('/');
            if dir.is_empty() || dir == "." {
                return Ok(false);
            }
            assets::check_path(dir)?;
            if dir != ASSETS && !dir.starts_with("assets/") {
                return Err(PackageError::Unexpected {
                    path: dir.to_string(),
                });
            }
            return Ok(false);
        }
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Char => "a character device",
        tar::EntryType::Block => "a block device",
        tar::EntryType::Fifo => "a FIFO",
        tar::EntryType::GNUSparse => "a sparse file",
        _ => "an entry of an unknown type",
    };
    Err(PackageError::NotRegular {
        path: path.chars().take(200).collect(),
        kind,
    })
}

/// An entry's `size` bytes (already checked against its bound), all of them.
fn read_entry(
    entry: &mut impl Read,
    size: u64,
    corrupt: &impl Fn(std::io::Error) -> PackageError,
) -> Result<Vec<u8>, PackageError> {
    let mut data = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut data).map_err(corrupt)?;
    if data.len() as u64 != size {
        return Err(PackageError::Corrupt(format!(
            "an entry ends after {} of its {size} bytes",
            data.len()
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package() -> Package {
        Package {
            manifest: "name = \"x\"\n".into(),
            component: b"\0asm fake".to_vec(),
            assets: Assets::from_entries([
                ("templates/x/email/subject.j2".into(), b"Hi".to_vec()),
                (
                    format!("templates/{}/long.j2", "a".repeat(150)),
                    b"long".to_vec(),
                ),
            ])
            .unwrap(),
        }
    }

    #[test]
    fn round_trip_and_deterministic() {
        let p = package();
        let a = p.to_archive();
        assert_eq!(a, p.to_archive());
        assert_eq!(Package::from_archive(&a, &Limits::default()).unwrap(), p);
        let stored = assets_to_archive(&p.assets);
        assert_eq!(assets_from_archive(&stored).unwrap(), p.assets);
    }

    /// What bsdtar (macOS) writes for a long path: a pax header with `path=…`.
    #[test]
    fn pax_paths_are_read() {
        let long = format!("assets/{}/subject.j2", "b".repeat(120));
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, data) in [("manifest.toml", &b"m"[..]), ("plugin.wasm", b"w")] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, path, data).unwrap();
        }
        tar.append_pax_extensions([("path", long.as_bytes())])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("assets/truncated").unwrap();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, &b"hi"[..]).unwrap();
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let p = Package::from_archive(&bytes, &Limits::default()).unwrap();
        assert_eq!(p.assets.list(""), vec![long["assets/".len()..].to_string()]);
        // A pax header of any size is not read into memory.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let big = "x".repeat(MAX_PAX_BYTES as usize);
        tar.append_pax_extensions([("comment", big.as_bytes())])
            .unwrap();
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        assert!(matches!(
            Package::from_archive(&bytes, &Limits::default()),
            Err(PackageError::EntryTooLarge {
                what: "a pax header",
                ..
            })
        ));
    }

    #[test]
    fn archive_over_the_limit() {
        let a = package().to_archive();
        let limits = Limits {
            archive_bytes: a.len() as u64 - 1,
            ..Limits::default()
        };
        assert!(matches!(
            Package::from_archive(&a, &limits),
            Err(PackageError::ArchiveTooLarge { .. })
        ));
        assert_eq!(
            Package::from_archive(b"PK\x03\x04", &Limits::default()),
            Err(PackageError::NotGzip)
        );
    }
}
