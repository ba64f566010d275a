//! Tearing a test's dockerd down and checking what it left: the shim,
//! runsc and docker-proxy processes, its containerd, mounts, shim sockets,
//! runsc state, container cgroups and bridges that belong to this daemon
//! (found by its directory, its containerd's socket, its runsc root, its
//! cgroup parent and its subnets: other suites may run meanwhile, so
//! nothing else counts). [`Traces`] holds what finding them takes, so a
//! binary that aborts on panic can remove them too.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use super::Dockerd;
use crate::host::{mounts_under, pids_matching};

/// Where a private dockerd's processes, mounts, state, cgroups and bridges
/// can be found, without its handle.
#[derive(Debug, Clone)]
pub(crate) struct Traces {
    pub(crate) dir: PathBuf,
    /// The default bridge (made by the test).
    pub(crate) bridge: String,
    /// The bridge of the user-defined network, when a test makes one.
    pub(crate) user_bridge: String,
    /// The containers' cgroup parent, without the leading `/`.
    pub(crate) cgroup_parent: String,
    /// The subnets' prefixes up to the last octet's dot, e.g. `10.215.7.`.
    pub(crate) subnets: Vec<String>,
    /// Whether the daemon runs with live restore (which keeps its data
    /// root mounted when it stops).
    pub(crate) live_restore: bool,
}

impl Traces {
    pub(crate) fn exec_root(&self) -> PathBuf {
        self.dir.join("exec")
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("daemon.json")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    pub(crate) fn runsc_root(&self) -> PathBuf {
        self.dir.join("runsc-root")
    }

    /// The socket of the containerd dockerd starts (under its exec root).
    fn containerd_socket(&self) -> String {
        self.exec_root()
            .join("containerd/containerd.sock")
            .to_string_lossy()
            .into_owned()
    }

    fn dockerd_pids(&self) -> Vec<i32> {
        let arg = format!("--config-file {}", self.config().display());
        pids_matching(|cmd| cmd.contains("dockerd") && cmd.contains(&arg))
    }

    fn containerd_pids(&self) -> Vec<i32> {
        let arg = format!("--config {}", self.exec_root().join("containerd").display());
        pids_matching(|cmd| cmd.starts_with("containerd ") && cmd.contains(&arg))
    }

    /// Shims (runc's and ours) serving this daemon's containerd.
    fn shim_pids(&self) -> Vec<i32> {
        let address = format!("-address {} ", self.containerd_socket());
        pids_matching(|cmd| cmd.contains("containerd-shim") && cmd.contains(&address))
    }

    fn runsc_pids(&self) -> Vec<i32> {
        let root = self.runsc_root().to_string_lossy().into_owned();
        pids_matching(|cmd| cmd.contains("runsc") && cmd.contains(&root))
    }

    /// docker-proxy processes forwarding to one of this daemon's subnets.
    fn proxy_pids(&self) -> Vec<i32> {
        pids_matching(|cmd| {
            cmd.contains("docker-proxy")
                && self
                    .subnets
                    .iter()
                    .any(|s| cmd.contains(&format!("-container-ip {s}")))
        })
    }

    /// Shim sockets of this daemon's containerd that exist now: containerd
    /// (at debug level, as dockerd's debug runs it) logs each shim's
    /// address (1.7: "shim bootstrap parameters").
    fn own_sockets(&self) -> Vec<PathBuf> {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        let mut out: Vec<PathBuf> = log
            .lines()
            .filter_map(|l| l.split("address=\"unix://").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// runsc state directories (`<root>/<namespace>/<id>`).
    fn runsc_state(&self) -> Vec<PathBuf> {
        fs::read_dir(self.runsc_root())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|ns| fs::read_dir(ns.path()).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path()))
            .collect()
    }

    /// The cgroup parent in every hierarchy where it exists.
    fn parent_cgroups(&self) -> Vec<PathBuf> {
        let base = Path::new("/sys/fs/cgroup");
        let hierarchies = fs::read_dir(base).into_iter().flatten().flatten();
        std::iter::once(base.join(&self.cgroup_parent))
            .chain(hierarchies.map(|h| h.path().join(&self.cgroup_parent)))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Containers' cgroups still under the parent.
    fn container_cgroups(&self) -> Vec<PathBuf> {
        self.parent_cgroups()
            .into_iter()
            .filter_map(|p| fs::read_dir(p).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect()
    }

    /// Interfaces still attached to the test's bridges (containers' veths).
    fn bridge_ports(&self) -> Vec<String> {
        [&self.bridge, &self.user_bridge]
            .into_iter()
            .flat_map(|b| {
                let out = Command::new("ip")
                    .args(["-o", "link", "show", "master", b])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                out.lines()
                    .filter_map(|l| l.split(':').nth(1))
                    .map(|name| format!("{} on {b}", name.trim()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn link_exists(name: &str) -> bool {
        Command::new("ip")
            .args(["link", "show", name])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// What is left of the daemon's containers while it runs: processes,
    /// sockets, runsc state, cgroups, container mounts and network ports.
    /// Empty once every container and network is removed.
    fn container_leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for pid in self.shim_pids() {
            out.push(format!("shim process {pid}"));
        }
        for pid in self.runsc_pids() {
            out.push(format!("runsc process {pid}"));
        }
        for pid in self.proxy_pids() {
            out.push(format!("docker-proxy process {pid}"));
        }
        for s in self.own_sockets() {
            out.push(format!("shim socket {}", s.display()));
        }
        for s in self.runsc_state() {
            out.push(format!("runsc state {}", s.display()));
        }
        for c in self.container_cgroups() {
            out.push(format!("cgroup {}", c.display()));
        }
        // dockerd keeps its data root bind-mounted on itself while it runs.
        let data = self.data_root();
        for m in mounts_under(&self.dir) {
            if m != data && m != self.host_netns() {
                out.push(format!("mount {m}"));
            }
        }
        for p in self.bridge_ports() {
            out.push(format!("interface {p}"));
        }
        if Self::link_exists(&self.user_bridge) {
            out.push(format!("bridge {}", self.user_bridge));
        }
        out
    }

    /// What a stopped daemon left: its processes and mounts (but the ones
    /// dockerd itself leaves by design: see [`Traces::host_netns`]; with
    /// live restore, its data root).
    fn daemon_leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for pid in self.dockerd_pids() {
            out.push(format!("dockerd process {pid}"));
        }
        for pid in self.containerd_pids() {
            out.push(format!("containerd process {pid}"));
        }
        for m in mounts_under(&self.dir) {
            let kept = m == self.host_netns() || (self.live_restore && m == self.data_root());
            if !kept {
                out.push(format!("mount {m}"));
            }
        }
        out
    }

    fn data_root(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// The host network's sandbox key, which dockerd mounts once a
    /// container on `--network host` ran and leaves mounted until (and
    /// after) it exits: the daemon's, not a container's.
    fn host_netns(&self) -> String {
        self.exec_root()
            .join("netns/default")
            .to_string_lossy()
            .into_owned()
    }

    /// Once dockerd is stopped: kills what is left (containerd, shims,
    /// runsc, docker-proxy), unmounts what is mounted under the directory,
    /// removes shim sockets, runsc state, cgroups and the bridges.
    fn sweep(&self) {
        kill_all(self.containerd_pids());
        kill_all(self.shim_pids());
        kill_all(self.runsc_pids());
        kill_all(self.proxy_pids());
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for s in self.own_sockets() {
            let _ = fs::remove_file(s);
        }
        let _ = fs::remove_dir_all(self.runsc_root());
        for _ in 0..20 {
            let mut left = self.container_cgroups();
            left.extend(self.parent_cgroups());
            if left.is_empty() {
                break;
            }
            // Children first; v1's memory controller says busy for a moment
            // after its last task left, hence a few tries.
            left.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
            for c in left {
                let _ = fs::remove_dir(c);
            }
            thread::sleep(Duration::from_millis(50));
        }
        for b in [&self.user_bridge, &self.bridge] {
            if Self::link_exists(b) {
                let _ = Command::new("ip").args(["link", "del", b]).output();
            }
        }
    }

    /// After a panic that runs no destructor: kills dockerd and everything
    /// it left, then removes the directory.
    pub(crate) fn abort(&self) {
        kill_all(self.dockerd_pids());
        self.sweep();
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

/// Waits up to `limit` for `f` to return nothing; returns what it last did.
fn settle(limit: Duration, f: impl Fn() -> Vec<String>) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut left = f();
    while !left.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        left = f();
    }
    left
}

impl Dockerd {
    /// Force-removes every container and every unused network.
    pub fn remove_all(&self) {
        let out = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let _ = self.docker(&["network", "prune", "-f"]);
    }

    /// Pids of shim processes (runc's or ours) serving this daemon.
    pub fn shim_pids(&self) -> Vec<i32> {
        self.traces.shim_pids()
    }

    /// Pids of this daemon's containerd.
    pub fn containerd_pids(&self) -> Vec<i32> {
        self.traces.containerd_pids()
    }

    /// Stops dockerd: SIGTERM, up to 30 s for it to finish (it stops its
    /// containerd, and with live restore leaves the containers running),
    /// then SIGKILL.
    pub(super) fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Removes every container and network, stops dockerd and asserts that
    /// nothing of this daemon is left.
    pub fn stop_and_check(mut self) {
        self.remove_all();
        // containerd deletes the shims' tasks and shims exit asynchronously.
        let mut left = settle(Duration::from_secs(15), || {
            self.traces.container_leftovers()
        });
        self.stop_daemon();
        // dockerd stops its containerd on the way out.
        left.extend(settle(Duration::from_secs(10), || {
            self.traces.daemon_leftovers()
        }));
        let log = self.log_tail(40);
        self.traces.sweep();
        assert!(
            left.is_empty(),
            "the test's dockerd left behind: {left:?}\ndockerd log:\n{log}"
        );
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_all();
            self.stop_daemon();
        }
        self.traces.sweep();
    }
}
