//! Path templating for runsc flags and the shim's own log (pure functions).
//!
//! Newer runsc expands `%ID%` in path flags itself; 0.0~20221219 does not, so
//! the shim substitutes before calling runsc and configs behave the same on
//! both.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// runsc flags whose values are paths that may contain `%ID%`/`%CID%`.
pub const PATH_KEYS: &[&str] = &[
    "log",
    "panic-log",
    "debug-log",
    "coverage-report",
    "profile-block",
    "profile-cpu",
    "profile-heap",
    "profile-mutex",
    "trace",
];

/// File name used when the shim log path names a directory.
const SHIM_LOG_PREFIX: &str = "runsc-shim-";

/// Replaces `%ID%` with the sandbox id and `%CID%` with the container id in
/// the [`PATH_KEYS`] entries of `config`; other keys are copied unchanged.
pub fn format_runsc_paths(
    sandbox_id: &str,
    container_id: &str,
    config: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    config
        .iter()
        .map(|(k, v)| {
            let v = if PATH_KEYS.contains(&k.as_str()) {
                v.replace("%ID%", sandbox_id).replace("%CID%", container_id)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// Directories to create before `create`: the parent of each path-valued
/// flag, or the value itself when it ends with `/` (a directory prefix).
pub fn emitted_paths(config: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (k, v) in config {
        if !PATH_KEYS.contains(&k.as_str()) || v.is_empty() {
            continue;
        }
        let dir = if v.ends_with('/') {
            PathBuf::from(v)
        } else {
            match Path::new(v).parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => continue,
            }
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The shim's log file: `%ID%` becomes `id`, and a directory path (ending
/// in `/`) gets `runsc-shim-<id>.log` appended.
pub fn format_shim_log_path(path: &str, id: &str) -> PathBuf {
    let p = path.replace("%ID%", id);
    if p.ends_with('/') {
        PathBuf::from(format!("{p}{SHIM_LOG_PREFIX}{id}.log"))
    } else {
        PathBuf::from(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = &'static [(&'static str, &'static str)];

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn runsc_paths_table() {
        let cases: &[(Pairs, Pairs)] = &[
            (&[], &[]),
            (
                &[("log", "/l/%ID%/runsc.log")],
                &[("log", "/l/sb/runsc.log")],
            ),
            (
                &[("debug-log", "/d/%ID%-%CID%-%ID%.txt")],
                &[("debug-log", "/d/sb-ct-sb.txt")],
            ),
            (
                &[("platform", "%ID%"), ("trace", "%CID%")],
                &[("platform", "%ID%"), ("trace", "ct")],
            ),
            (
                &[("panic-log", "/p/%TIMESTAMP%"), ("profile-cpu", "/p/%ID%")],
                &[("panic-log", "/p/%TIMESTAMP%"), ("profile-cpu", "/p/sb")],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                format_runsc_paths("sb", "ct", &map(input)),
                map(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn emitted_paths_table() {
        let cases: &[(Pairs, &[&str])] = &[
            (&[], &[]),
            (&[("log", "/a/b/c.log")], &["/a/b"]),
            (&[("debug-log", "/d/")], &["/d/"]),
            (&[("platform", "/x/y"), ("log", "rel.log")], &[]),
            (
                &[
                    ("log", "/a/x.log"),
                    ("panic-log", "/a/y.log"),
                    ("trace", "/t/"),
                ],
                &["/a", "/t/"],
            ),
        ];
        for (input, want) in cases {
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(emitted_paths(&map(input)), want, "{input:?}");
        }
    }

    #[test]
    fn shim_log_table() {
        let cases = [
            ("/var/log/shim.log", "c1", "/var/log/shim.log"),
            ("/var/log/%ID%.log", "c1", "/var/log/c1.log"),
            ("/var/log/", "c1", "/var/log/runsc-shim-c1.log"),
            ("/var/%ID%/", "c1", "/var/c1/runsc-shim-c1.log"),
        ];
        for (path, id, want) in cases {
            assert_eq!(format_shim_log_path(path, id), PathBuf::from(want));
        }
    }
}
