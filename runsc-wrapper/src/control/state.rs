//! runsc's per-container state file (`<root>/<cid>_sandbox:<sbid>.state`)
//! and its lock (`.lock`, flock): where a sandbox's control socket is, who
//! owns the sandbox, and the `status` field a direct start or pause must
//! update so `runsc state/list/kill/delete` keep working. Every access takes
//! the lock, since runsc rewrites the file in place.

use std::{
    fs,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::urpc::Address;

/// What a direct client needs from a container's state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    /// The `.state` file.
    pub path: PathBuf,
    /// The sandbox the container lives in.
    pub sandbox_id: String,
    /// Host pid of the sandbox (boot) process.
    pub sandbox_pid: i32,
    /// Owner runsc gives passed stdio (`fchown`).
    pub owner: (u32, u32),
    /// Where the sandbox's control server listens.
    pub address: Address,
    /// The container's recorded status (`created`, `running`, `paused`...).
    pub status: String,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    status: String,
    sandbox: RawSandbox,
}

#[derive(Deserialize)]
struct RawSandbox {
    id: String,
    #[serde(default)]
    pid: i32,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default, rename = "controlSocketPath")]
    control_socket_path: Option<PathBuf>,
}

/// The state file of container `cid` under `root`: exactly one match.
pub fn find(root: &Path, cid: &str) -> std::io::Result<PathBuf> {
    let prefix = format!("{cid}_sandbox:");
    let mut hits = fs::read_dir(root)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".state"));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Ok(root.join(one)),
        (None, _) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no state file for container {cid} in {}", root.display()),
        )),
        (Some(_), Some(_)) => Err(std::io::Error::other(format!(
            "more than one state file for container {cid} in {}",
            root.display()
        ))),
    }
}

/// Whether `root` holds runsc state for container `cid` (a root
/// container's or a pod member's: `<cid>_sandbox:<sandbox>.state`).
/// Blocking (a directory read). Two files for one id count too: whatever
/// they are, runsc knows the id.
pub fn exists(root: &Path, cid: &str) -> bool {
    match find(root, cid) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Parses a state file's text.
pub fn parse(path: &Path, text: &str) -> Result<StateFile, String> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let address = match raw.sandbox.control_socket_path {
        Some(p) if !p.as_os_str().is_empty() => Address::Path(p),
        _ => Address::abstract_for(&raw.sandbox.id),
    };
    Ok(StateFile {
        path: path.to_path_buf(),
        sandbox_id: raw.sandbox.id,
        sandbox_pid: raw.sandbox.pid,
        owner: (raw.sandbox.uid, raw.sandbox.gid),
        address,
        status: raw.status,
    })
}

/// Holds a container's flock while alive.
pub(super) struct Locked(fs::File);

impl Locked {
    pub(super) fn take(state: &Path) -> std::io::Result<Locked> {
        use std::os::unix::fs::OpenOptionsExt;
        let lock = state.with_extension("lock");
        let f = fs::OpenOptions::new()
            .read(true)
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(lock)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Locked(f))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Reads container `cid`'s state under its lock (blocking).
pub fn load(root: &Path, cid: &str) -> Result<StateFile, String> {
    let path = find(root, cid).map_err(|e| e.to_string())?;
    let _lock = Locked::take(&path).map_err(|e| format!("lock {}: {e}", path.display()))?;
    let text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    parse(&path, &text)
}

/// Whether a recorded status `now` is one of `from`, the statuses an
/// operation may start from.
pub fn check_status(now: &str, from: &[&str]) -> Result<(), String> {
    if from.contains(&now) {
        Ok(())
    } else {
        Err(format!("container is {now:?}, not one of {from:?}"))
    }
}

/// Moves the recorded status from one of `from` to `to` under the lock, as
/// runsc's own start/pause/resume do (blocking). Unknown fields survive.
pub fn set_status(path: &Path, from: &[&str], to: &str) -> Result<(), String> {
    let _lock = Locked::take(path).map_err(|e| format!("lock {}: {e}", path.display()))?;
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let now = v.get("status").and_then(|s| s.as_str()).unwrap_or_default();
    check_status(now, from)?;
    v["status"] = serde_json::Value::String(to.to_string());
    let out = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
    fs::write(path, out).map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S2022: &str = r#"{"id":"c1","status":"running","spec":{},"sandbox":{"id":"sb","pid":42,"uid":65534,"gid":65534}}"#;
    const S2024: &str = r#"{"id":"c1","status":"created","sandbox":{"id":"sb","pid":7,"uid":0,"gid":0,"controlSocketPath":"/r/runsc-sb.sock"},"goferMountConfs":[]}"#;

    #[test]
    fn the_socket_comes_from_the_state_files_dialect() {
        let a = parse(Path::new("x"), S2022).unwrap();
        assert_eq!(a.address, Address::abstract_for("sb"));
        assert_eq!((a.sandbox_pid, a.owner), (42, (65534, 65534)));
        let b = parse(Path::new("x"), S2024).unwrap();
        assert_eq!(b.address, Address::Path("/r/runsc-sb.sock".into()));
        assert_eq!(b.status, "created");
        assert!(parse(Path::new("x"), "garbage").is_err());
    }

    #[test]
    fn state_exists_for_root_containers_and_members_by_their_own_id() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!exists(dir.path(), "pod"));
        fs::write(dir.path().join("pod_sandbox:pod.state"), S2024).unwrap();
        fs::write(dir.path().join("c1_sandbox:pod.state"), S2024).unwrap();
        assert!(exists(dir.path(), "pod") && exists(dir.path(), "c1"));
        assert!(!exists(dir.path(), "c") && !exists(dir.path(), "po"));
        assert!(!exists(Path::new("/nonexistent/runsc-root"), "pod"));
    }

    #[test]
    fn status_changes_keep_every_other_field_and_check_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("c1_sandbox:sb.state"), S2024).unwrap();
        let path = find(dir.path(), "c1").unwrap();
        assert!(find(dir.path(), "c").is_err(), "a prefix is not an id");
        set_status(&path, &["created"], "running").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["status"], "running");
        assert_eq!(v["goferMountConfs"], serde_json::json!([]));
        assert_eq!(
            set_status(&path, &["created"], "running"),
            Err(r#"container is "running", not one of ["created"]"#.to_string())
        );
        assert_eq!(load(dir.path(), "c1").unwrap().status, "running");
        assert_eq!(check_status("paused", &["running", "paused"]), Ok(()));
    }
}
