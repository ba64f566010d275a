//! What a load left on the host, removed once it has been counted: the Go
//! shim driving runsc leaves every container behind (its delete fails
//! after runsc's sandbox is gone), and a faulted run may leave a killed
//! shim's container. Processes of this run (shims of its containerd, runsc
//! of its runtime root) are killed by pid, then its runtime state, shim
//! sockets, container cgroups and rootfs mounts are removed. What was
//! there before the load is left alone.

use std::{fs, path::Path, thread, time::Duration};

use nix::{
    mount::{umount2, MntFlags},
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use test_support::host::{mounts_under, pids_matching};

use super::sample::Places;

/// Removes what the load left; returns what it removed, for the log.
pub fn scrub(places: &Places) -> Vec<String> {
    let mut done = Vec::new();
    let socket = places.socket.to_string_lossy().into_owned();
    let root = places.runtime_root.to_string_lossy().into_owned();
    let pids = pids_matching(|cmd| {
        (cmd.contains(places.shim) && cmd.contains(&socket))
            || (cmd.starts_with("runsc") && cmd.contains(&root))
    });
    let mut names = Vec::new();
    for &pid in &pids {
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        names.push(format!("{pid} ({})", cmd.trim()));
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if !pids.is_empty() {
        done.push(format!("processes: {}", names.join(", ")));
        // Killed processes leave their cgroups once reaped.
        thread::sleep(Duration::from_secs(1));
    }
    let mut files = Vec::new();
    let state = fs::read_dir(&places.runtime_root)
        .into_iter()
        .flatten()
        .flatten();
    for p in state.map(|e| e.path()).chain(places.sockets()) {
        if places.before.contains(&p) {
            continue;
        }
        let removed = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        if removed.is_ok() {
            files.push(p.display().to_string());
        }
    }
    if !files.is_empty() {
        done.push(format!("state entries and sockets: {}", files.join(", ")));
    }
    // The runtime's namespace directory, if the load left it empty.
    let _ = fs::remove_dir(&places.runtime_root);
    let cgroups = remove_cgroups(places.namespace);
    if !cgroups.is_empty() {
        done.push(format!("cgroups: {}", cgroups.join(", ")));
    }
    let mut mounts = mounts_under(&places.containerd_dir);
    // Deepest first.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &mounts {
        let _ = umount2(Path::new(m), MntFlags::MNT_DETACH);
    }
    if !mounts.is_empty() {
        done.push(format!("{} mounts", mounts.len()));
    }
    done
}

/// Removes the container cgroups under `/<namespace>` in every hierarchy
/// (and the namespace's own, once empty).
fn remove_cgroups(namespace: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    // cgroup v2: /sys/fs/cgroup/<ns>; v1: /sys/fs/cgroup/<controller>/<ns>.
    let hierarchies = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path());
    for ns in std::iter::once(root.join(namespace)).chain(hierarchies.map(|h| h.join(namespace))) {
        for c in fs::read_dir(&ns).into_iter().flatten().flatten() {
            if c.path().is_dir() && fs::remove_dir(c.path()).is_ok() {
                removed.push(c.path().display().to_string());
            }
        }
        let _ = fs::remove_dir(&ns);
    }
    removed
}
