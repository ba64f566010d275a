//! `linux.maskedPaths` and `linux.readonlyPaths`, which runsc ignores,
//! made mounts it honours, as runc applies them:
//!
//! - a masked file gets an empty read-only, non-executable file bound over
//!   it (reading gives nothing, running it "Permission denied");
//! - a masked directory gets an empty read-only tmpfs;
//! - a read-only path becomes read-only: a spec mount at that very path
//!   gets `ro`, anything else a read-only bind of the rootfs's own path,
//!   placed before the spec's mounts below it so those stay as they are.
//!
//! Paths under `/proc` and `/sys` are left alone: gVisor's own proc and
//! sys file systems have none of the host's files those defaults hide, and
//! spec mounts cannot go there. A path missing from the rootfs is skipped,
//! as runc skips it. containerd leaves both lists empty for privileged
//! containers, so those get nothing.

use std::{
    os::fd::AsFd,
    path::{Component, Path, PathBuf},
};

use nix::{
    fcntl::{openat2, OFlag, OpenHow, ResolveFlag},
    sys::stat::{fstat, SFlag},
};
use serde_json::{json, Value};

/// What a path in the rootfs is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A directory.
    Dir,
    /// Anything else (a file, a device...).
    File,
}

/// What [`masked_and_readonly`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MaskedPaths {
    /// Paths masked.
    pub masked: Vec<String>,
    /// Paths made read-only.
    pub readonly: Vec<String>,
}

impl MaskedPaths {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.masked.is_empty() || !self.readonly.is_empty()
    }
}

/// Adds the mounts for the spec's masked and read-only paths. `kind` says
/// what a container path is in the rootfs (None: missing); `rootfs` is the
/// rootfs on the host; `empty_file` is the empty file masked files get.
pub fn masked_and_readonly(
    spec: &mut Value,
    kind: &dyn Fn(&str) -> Option<PathKind>,
    rootfs: &Path,
    empty_file: &Path,
) -> MaskedPaths {
    let list = |key: &str| -> Vec<String> {
        spec["linux"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|p| applies(p))
            .map(str::to_string)
            .collect()
    };
    let (masked, readonly) = (list("maskedPaths"), list("readonlyPaths"));
    let mut done = MaskedPaths::default();
    if masked.is_empty() && readonly.is_empty() {
        return done;
    }
    if !spec["mounts"].is_array() {
        spec["mounts"] = json!([]);
    }
    for path in readonly {
        if kind(&path).is_none() {
            continue;
        }
        let Some(mounts) = spec["mounts"].as_array_mut() else {
            break;
        };
        if let Some(m) = mounts.iter_mut().find(|m| destination(m) == Some(&path)) {
            make_read_only(m);
        } else {
            let source = rootfs.join(path.trim_start_matches('/'));
            let bind = json!({
                "destination": path,
                "type": "bind",
                "source": source,
                "options": ["rbind", "ro"],
            });
            // Before the mounts below it, which stay as the spec has them.
            let below = mounts
                .iter()
                .position(|m| destination(m).is_some_and(|d| is_below(d, &path)));
            mounts.insert(below.unwrap_or(mounts.len()), bind);
        }
        done.readonly.push(path);
    }
    for path in masked {
        let mount = match kind(&path) {
            None => continue,
            Some(PathKind::Dir) => json!({
                "destination": path,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["ro", "nosuid", "nodev", "noexec", "mode=755"],
            }),
            Some(PathKind::File) => json!({
                "destination": path,
                "type": "bind",
                "source": empty_file,
                "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
            }),
        };
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            // Last: nothing mounted later may uncover it.
            mounts.push(mount);
            done.masked.push(path);
        }
    }
    done
}

/// Whether a path is one the sandbox's own mounts can mask.
fn applies(path: &str) -> bool {
    let p = Path::new(path);
    p.is_absolute() && !p.starts_with("/proc") && !p.starts_with("/sys") && p != Path::new("/")
}

fn destination(m: &Value) -> Option<&str> {
    m.get("destination").and_then(Value::as_str)
}

fn is_below(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir) && Path::new(path) != Path::new(dir)
}

fn make_read_only(m: &mut Value) {
    let mut options: Vec<Value> = m["options"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o != "rw" && o != "ro")
        .collect();
    options.push(json!("ro"));
    m["options"] = Value::Array(options);
}

/// What `path` (a container path) is inside `root`, resolving symlinks
/// within it; None if it does not exist.
pub fn kind_in_rootfs(root: &impl AsFd, path: &str) -> Option<PathKind> {
    let rel: PathBuf = Path::new(path)
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect();
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let fd = openat2(root.as_fd(), rel.as_path(), how).ok()?;
    let st = fstat(&fd).ok()?;
    Some(
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            PathKind::Dir
        } else {
            PathKind::File
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(p: &str) -> Option<PathKind> {
        match p {
            "/bin/ls" | "/etc/secret" => Some(PathKind::File),
            "/tmp" | "/data" | "/var/cache" => Some(PathKind::Dir),
            _ => None,
        }
    }

    fn apply(spec: &mut Value) -> MaskedPaths {
        masked_and_readonly(spec, &kinds, Path::new("/b/rootfs"), Path::new("/b/masked"))
    }

    #[test]
    fn masked_files_and_directories_get_empty_read_only_mounts() {
        let mut spec = json!({
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"maskedPaths": ["/bin/ls", "/var/cache", "/proc/kcore", "/nope"]},
        });
        let done = apply(&mut spec);
        assert_eq!(done.masked, ["/bin/ls", "/var/cache"]);
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            mounts[1],
            json!({"destination": "/bin/ls", "type": "bind", "source": "/b/masked",
                   "options": ["bind", "ro", "nosuid", "nodev", "noexec"]})
        );
        assert_eq!(mounts[2]["type"], "tmpfs");
        assert_eq!(mounts[2]["options"][0], "ro");
    }

    #[test]
    fn read_only_paths_bind_the_rootfs_or_make_a_mount_ro() {
        let mut spec = json!({
            "mounts": [
                {"destination": "/data", "type": "bind", "source": "/vol", "options": ["rbind", "rw"]},
                {"destination": "/tmp/x", "type": "tmpfs", "source": "tmpfs"},
            ],
            "linux": {"readonlyPaths": ["/tmp", "/data", "/proc/sys", "/nope"]},
        });
        let done = apply(&mut spec);
        assert_eq!(done.readonly, ["/tmp", "/data"]);
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(mounts[0]["options"], json!(["rbind", "ro"]));
        // Before /tmp/x, which stays writable on top of it.
        assert_eq!(
            mounts[1],
            json!({"destination": "/tmp", "type": "bind", "source": "/b/rootfs/tmp",
                   "options": ["rbind", "ro"]})
        );
        assert_eq!(mounts[2]["destination"], "/tmp/x");
    }

    #[test]
    fn the_defaults_of_an_unprivileged_container_change_nothing() {
        let mut spec = json!({
            "linux": {
                "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
            },
        });
        let before = spec.clone();
        assert!(!apply(&mut spec).changed());
        assert_eq!(spec, before);
    }

    #[test]
    fn kinds_are_read_inside_the_rootfs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("tmp")).unwrap();
        std::fs::write(d.path().join("f"), "").unwrap();
        std::os::unix::fs::symlink("/f", d.path().join("link")).unwrap();
        let root = std::fs::File::open(d.path()).unwrap();
        assert_eq!(kind_in_rootfs(&root, "/tmp"), Some(PathKind::Dir));
        assert_eq!(kind_in_rootfs(&root, "/f"), Some(PathKind::File));
        // An absolute link resolves inside the rootfs, not on the host.
        assert_eq!(kind_in_rootfs(&root, "/link"), Some(PathKind::File));
        assert_eq!(kind_in_rootfs(&root, "/missing"), None);
    }
}
