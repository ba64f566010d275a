//! Tearing a test's containerd down and checking what it left: the shim
//! sockets, shim and runsc processes, mounts and cgroups that belong to
//! this containerd, removed on drop and reported by
//! [`Containerd::stop_and_check`]. What a teardown needs to find them is
//! kept apart ([`Traces`]), so a binary that aborts on panic can remove
//! them too (see [`crate::abort`]).

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use super::{mounts_under, output_within, pids_matching, Containerd, CTR_LIMIT, SOCKET_DIR};

/// What [`Containerd::remove_all_in`] found and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A task, killed and deleted (its container is removed after).
    Task(String),
    /// A container record.
    Container(String),
}

/// Where a private containerd's processes, sockets, mounts, runsc state
/// and cgroups can be found, without its handle.
#[derive(Debug, Clone)]
pub(crate) struct Traces {
    pub(crate) dir: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) namespace: String,
    pub(crate) runsc_root: PathBuf,
}

impl Traces {
    /// Shim sockets of this containerd that exist now. Tests run in
    /// parallel, so only sockets whose name derives (as containerd derives
    /// it) from this containerd's address, namespace and one of the
    /// container ids it saw count; the others belong to other tests.
    fn own_sockets(&self) -> Vec<PathBuf> {
        use sha2::{Digest, Sha256};
        let log = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let ids: BTreeSet<&str> = log
            .lines()
            .filter(|l| l.contains("msg=\"prepare snapshot\""))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("key=")))
            .collect();
        ids.into_iter()
            .map(|id| {
                let key = format!("{}/{}/{id}", self.socket.display(), self.namespace);
                let hex: String = Sha256::digest(key.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                Path::new(SOCKET_DIR).join(hex)
            })
            .filter(|p| p.exists())
            .collect()
    }

    /// Pids of shim processes serving this containerd.
    fn shim_pids(&self) -> Vec<i32> {
        pids_matching(|cmd| {
            cmd.contains("containerd-shim-runsc-v1")
                && cmd.contains(&*self.socket.to_string_lossy())
        })
    }

    /// Once containerd is stopped: kills what it left running (shims,
    /// runsc), unmounts what is mounted under its directory, removes its
    /// shim sockets, runsc state and namespace cgroup.
    fn sweep(&self) {
        kill_all(self.shim_pids());
        let root = self.runsc_root.to_string_lossy().into_owned();
        kill_all(pids_matching(|cmd| {
            cmd.contains("runsc") && cmd.contains(&root)
        }));
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for s in self.own_sockets() {
            let _ = fs::remove_file(s);
        }
        let _ = fs::remove_dir_all(&self.runsc_root);
        // containerd's runc shim (the benchmark's baseline) keeps its
        // runtime's state under /run/containerd/runc/<namespace>.
        let _ = fs::remove_dir_all(Path::new("/run/containerd/runc").join(&self.namespace));
        remove_namespace_cgroups(&self.namespace);
    }

    /// After a panic that runs no destructor: kills containerd (found by
    /// its config file) and everything it left, removes the containers'
    /// cgroups that runsc never got to delete, then the directory.
    pub(crate) fn abort(&self) {
        let config = format!("--config {}", self.dir.join("config.toml").display());
        kill_all(pids_matching(|cmd| cmd.contains(&config)));
        self.sweep();
        for _ in 0..20 {
            let left = container_cgroups(&self.namespace);
            if left.is_empty() {
                break;
            }
            for c in left {
                let _ = fs::remove_dir(c);
            }
            thread::sleep(Duration::from_millis(50));
        }
        remove_namespace_cgroups(&self.namespace);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn kill_all(pids: Vec<i32>) {
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl Containerd {
    /// Shim sockets of this containerd that exist now (only sockets named
    /// after the container ids this containerd saw: tests run in parallel).
    pub fn own_sockets(&self) -> Vec<PathBuf> {
        self.traces.own_sockets()
    }

    /// Pids of shim processes serving this containerd.
    pub fn shim_pids(&self) -> Vec<i32> {
        self.traces.shim_pids()
    }

    /// Kills and removes every task and container in the namespace.
    pub fn remove_all(&self) {
        self.remove_all_in(&self.traces.namespace);
    }

    /// Runs `ctr <args>` in `namespace`: its stdout, empty if it failed or
    /// hung past [`CTR_LIMIT`] (for cleanups, which go on regardless).
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> String {
        let mut cmd = self.ctr_cmd();
        // A later `-n` overrides the one ctr_cmd gives.
        cmd.args(["-n", namespace]).args(args);
        output_within(&mut cmd, CTR_LIMIT)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Kills and deletes every task in `namespace`, then deletes every
    /// container there, and says what there was.
    pub fn remove_all_in(&self, namespace: &str) -> Vec<Removed> {
        let ctr = |args: &[&str]| self.ctr_in(namespace, args);
        let mut removed = Vec::new();
        for id in ctr(&["tasks", "list", "-q"]).split_whitespace() {
            ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
            ctr(&["tasks", "delete", "-f", id]);
            removed.push(Removed::Task(id.to_string()));
        }
        for id in ctr(&["containers", "list", "-q"]).split_whitespace() {
            ctr(&["containers", "delete", id]);
            removed.push(Removed::Container(id.to_string()));
        }
        removed
    }

    /// What this containerd left behind: shim processes, new sockets in
    /// `/run/containerd/s`, mounts under its directory. Empty means clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for pid in self.shim_pids() {
            out.push(format!("shim process {pid}"));
        }
        for s in self.own_sockets() {
            out.push(format!("socket {}", s.display()));
        }
        let root = self.traces.runsc_root.clone();
        let root_s = root.to_string_lossy().into_owned();
        for pid in pids_matching(|cmd| cmd.contains("runsc") && cmd.contains(&root_s)) {
            out.push(format!("runsc process {pid}"));
        }
        if let Ok(rd) = fs::read_dir(&root) {
            for e in rd.flatten() {
                // A sandbox's own root: what runsc (or nothing) left in it.
                let inside: Vec<String> = fs::read_dir(e.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|f| f.file_name().to_string_lossy().into_owned())
                    .collect();
                out.push(format!("runsc state {} {inside:?}", e.path().display()));
            }
        }
        for m in mounts_under(self.dir.path()) {
            if !m.contains("/snapshots/") {
                out.push(format!("mount {m}"));
            }
        }
        for c in container_cgroups(&self.traces.namespace) {
            out.push(format!("cgroup {}", c.display()));
        }
        out
    }

    /// Removes everything, stops containerd and asserts nothing leaked.
    pub fn stop_and_check(mut self) {
        self.remove_all();
        // containerd runs `shim delete` and shims exit asynchronously.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = self.leftovers();
        while !left.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            left = self.leftovers();
        }
        // What the shims warned of says why, once the directory is gone.
        let warnings: Vec<String> = if left.is_empty() {
            Vec::new()
        } else {
            let log = self.log();
            let lines = log
                .lines()
                .filter(|l| l.contains("level=warn") || l.contains("level=error"));
            let lines: Vec<&str> = lines.collect();
            lines[lines.len().saturating_sub(30)..]
                .iter()
                .map(|l| l.to_string())
                .collect()
        };
        self.shutdown();
        assert!(
            left.is_empty(),
            "test left behind: {left:?}\nwarnings in containerd's log:\n{}",
            warnings.join("\n")
        );
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Last resort so one failed test cannot poison the next ones.
        self.traces.sweep();
    }
}

/// Containers' cgroups (`/<namespace>/<id>`, containerd's default path)
/// still present in any hierarchy.
fn container_cgroups(namespace: &str) -> Vec<PathBuf> {
    namespace_cgroups(namespace)
        .into_iter()
        .filter_map(|ns| fs::read_dir(ns).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes the cgroup `/<namespace>` that containerd's default cgroups path
/// (`/<namespace>/<id>`) made in every hierarchy: runsc (as runc) removes
/// only the container's own, and each test has a namespace of its own.
/// Empty ones only, so a container left running keeps its cgroup; for a
/// moment after its last child went, v1's memory controller still says
/// busy, hence a few tries.
fn remove_namespace_cgroups(namespace: &str) {
    let mut left = namespace_cgroups(namespace);
    for _ in 0..20 {
        left.retain(|d| fs::remove_dir(d).is_err() && d.is_dir());
        if left.is_empty() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_all();
            self.shutdown();
        }
    }
}

/// The cgroup `/<namespace>` in every hierarchy where it exists (cgroup v2's
/// single tree, or each v1 controller's).
fn namespace_cgroups(namespace: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let hierarchies = fs::read_dir(base).into_iter().flatten().flatten();
    std::iter::once(base.join(namespace))
        .chain(hierarchies.map(|h| h.path().join(namespace)))
        .filter(|d| d.is_dir())
        .collect()
}
