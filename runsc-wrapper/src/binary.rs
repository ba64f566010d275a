//! What the shim asks a runsc binary about itself, once per binary: its
//! version, its global flags and whether it has `update`. Answers are kept
//! per binary (path and modification time) in this process and, for the
//! version and flags, as text in the cache directory across processes:
//! each pod's shim is a process of its own, and every runsc call costs a
//! Go start.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex},
};

use crate::{
    commands::custom_parse_error,
    error::{Error, Result},
    exec::CallIo,
    global::{CallLog, Runsc},
};

impl Runsc {
    /// Whether this runsc has `update`, asked once per client via
    /// `runsc help update` (exit 0 only for known subcommands).
    pub async fn supports_update(&self) -> Result<bool> {
        self.has_update
            .get_or_try_init(|| async {
                let out = self.ask_binary("help", &["help", "update"]).await?;
                Ok::<bool, Error>(out.status == 0)
            })
            .await
            .copied()
    }

    /// `runsc --version`: the version token, e.g. `0.0~20221219.0`; asked
    /// once per binary (path and modification time), cached on disk.
    pub async fn version(&self) -> Result<String> {
        self.per_binary(
            "version",
            &VERSION_CACHE,
            |text| Some(text.trim().to_string()).filter(|v| !v.is_empty()),
            |v| v.clone(),
            self.ask_version(),
        )
        .await
    }

    /// A question about the binary itself (no `--root`, no `--log`).
    async fn ask_binary(&self, verb: &str, args: &[&str]) -> Result<crate::exec::Outcome> {
        let mut cmd = std::process::Command::new(&self.command);
        cmd.args(args);
        let deadline = self.timeouts.get(verb);
        self.execute(
            verb,
            "",
            (cmd, CallLog::None),
            CallIo::Capture(None),
            deadline,
        )
        .await
    }

    async fn ask_version(&self) -> Result<String> {
        let out = self.ask_binary("version", &["--version"]).await?.check()?;
        let text = out.stdout_text();
        let first = text.lines().next().unwrap_or_default().trim();
        Ok(first
            .strip_prefix("runsc version ")
            .unwrap_or(first)
            .to_string())
    }
}

impl Runsc {
    /// The global flags this runsc binary knows (`runsc flags`), asked once
    /// per binary (path and modification time), cached on disk.
    pub async fn flags(&self) -> Result<Arc<BTreeSet<String>>> {
        self.per_binary(
            "flags",
            &FLAGS_CACHE,
            |text| {
                let flags: BTreeSet<String> = text.lines().map(str::to_string).collect();
                (!flags.is_empty()).then(|| Arc::new(flags))
            },
            |flags| flags.iter().map(|f| format!("{f}\n")).collect(),
            self.ask_flags(),
        )
        .await
    }

    async fn ask_flags(&self) -> Result<Arc<BTreeSet<String>>> {
        let out = self.ask_binary("flags", &["flags"]).await?.check()?;
        // Go's flag usage: one `  -name [type]` line per flag, help below.
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &out.stderr;
        let flags: BTreeSet<String> = parse_flag_names(&text);
        if flags.is_empty() {
            return Err(out.parse_error(custom_parse_error("no flags listed")));
        }
        Ok(Arc::new(flags))
    }

    /// A fact about the binary, asked once: kept per binary in this process
    /// and as text in the cache directory across processes (each pod's shim
    /// is a process of its own, and every runsc call costs a Go start).
    async fn per_binary<T: Clone>(
        &self,
        what: &str,
        memory: &Mutex<HashMap<BinaryKey, T>>,
        from_text: fn(&str) -> Option<T>,
        to_text: fn(&T) -> String,
        ask: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let key = binary_key(&self.command);
        let remember = |v: &T| {
            memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), v.clone());
        };
        let cached = memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        let disk = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(disk_cache_name(what, &key)));
        let stored = disk
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| {
                // The hash in the name could collide: the header says
                // which binary the file is about.
                let (head, body) = text.split_once('\n')?;
                (head == cache_header(&key)).then(|| from_text(body))?
            });
        if let Some(v) = stored {
            remember(&v);
            return Ok(v);
        }
        let v = ask.await?;
        if let (Some(dir), Some(path)) = (&self.cache_dir, &disk) {
            write_cache(path, &format!("{}\n{}", cache_header(&key), to_text(&v)));
            prune_cache(dir);
        }
        remember(&v);
        Ok(v)
    }
}

/// The file a binary's fact is kept in across processes.
fn disk_cache_name(what: &str, key: &BinaryKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!(".runsc-{what}-{:016x}", h.finish())
}

/// How a cache file's first line starts.
const HEADER_PREFIX: &str = "runsc-binary ";

/// A cache file's first line: the binary and modification time it is
/// about (path last: it may hold spaces).
fn cache_header((path, mtime): &BinaryKey) -> String {
    let mtime = mtime
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| "-".to_string(), |d| d.as_nanos().to_string());
    format!("{HEADER_PREFIX}{mtime} {}", path.display())
}

/// Removes the cache files of binaries that are gone or have changed since
/// (an upgraded runsc, a wrapper script in a directory since removed), and
/// files without a header, so the directory holds only what is still
/// true. Runs after each new entry, which is rare: once per binary.
fn prune_cache(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Another process's file being written is not ours to judge.
        if !name.starts_with(".runsc-") || name.contains(".tmp") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let head = text.lines().next().unwrap_or_default();
        let current = head
            .strip_prefix(HEADER_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .map(|(_, path)| PathBuf::from(path))
            .is_some_and(|path| {
                let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                mtime.is_some() && head == cache_header(&(path, mtime))
            });
        if !current {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes a cache file atomically; a failure only costs a later runsc call.
fn write_cache(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        log::debug!("cannot cache in {}: {e}", path.display());
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A runsc binary as found on disk: what is cached per binary is keyed by
/// its path and modification time, so an upgrade is asked again.
type BinaryKey = (PathBuf, Option<std::time::SystemTime>);

fn binary_key(command: &Path) -> BinaryKey {
    let path = resolve_binary(command);
    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    (path, mtime)
}

pub(crate) static FLAGS_CACHE: LazyLock<Mutex<HashMap<BinaryKey, Arc<BTreeSet<String>>>>> =
    LazyLock::new(Default::default);

static VERSION_CACHE: LazyLock<Mutex<HashMap<BinaryKey, String>>> = LazyLock::new(Default::default);

/// The release date in a runsc version (`0.0~20221219.0`,
/// `release-20240729.0`) as `yyyymmdd`, if it has one.
pub fn release_date(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 8)
        .and_then(|d| d.parse().ok())
}

/// The binary a bare command name runs (first match on `PATH`).
fn resolve_binary(command: &Path) -> PathBuf {
    if command.components().count() > 1 {
        return command.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(command))
        .find(|p| p.is_file())
        .unwrap_or_else(|| command.to_path_buf())
}

/// Flag names from Go's `flag` usage text (`  -name type` lines).
pub(crate) fn parse_flag_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  -"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        assert_eq!(release_date("0.0~20221219.0"), Some(20221219));
        assert_eq!(release_date("release-20240729.0"), Some(20240729));
        assert_eq!(release_date("0.0~20240729.0-1~bpo12+1"), Some(20240729));
        assert_eq!(release_date("devel"), None);
    }

    #[test]
    fn flag_names_from_usage() {
        let text = "  -debug\n    \tenable debug.\n  -network value\n    \tnet\nUsage: x\n";
        let f = parse_flag_names(text);
        assert_eq!(f.into_iter().collect::<Vec<_>>(), ["debug", "network"]);
    }
}
