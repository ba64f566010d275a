//! What a soak measures every few minutes: the shims' memory, descriptors
//! and threads, and the host resources containers hold (mounts, cgroups,
//! runtime state, shim sockets, FIFOs), each counted where that
//! configuration keeps them.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::FileTypeExt,
    path::{Path, PathBuf},
};

use serde_json::{json, Value};
use test_support::host::{mounts_under, pids_matching};

/// Where one configuration's resources are, to count them.
#[derive(Debug, Clone)]
pub struct Places {
    /// The shim binary's name (`containerd-shim-runsc-v1`, `-runc-v2`).
    pub shim: &'static str,
    /// containerd's gRPC socket: every shim of this containerd names it.
    pub socket: PathBuf,
    /// containerd's private directory (root, state: rootfs mounts, FIFOs).
    pub containerd_dir: PathBuf,
    /// The runtime's state directory for the soak's namespace.
    pub runtime_root: PathBuf,
    /// The containerd namespace the load runs in.
    pub namespace: &'static str,
    /// Shim sockets and runtime state there before the load (both are in
    /// host-wide directories, `/run/containerd/s` and the runtime's root,
    /// where an earlier run may have left some): not counted.
    pub before: BTreeSet<PathBuf>,
}

impl Places {
    /// The shim socket directories: containerd 2.x's `<state>/s`, and the
    /// host-wide `/run/containerd/s` older ones (and some shims) use.
    fn socket_dirs(&self) -> [PathBuf; 2] {
        [
            self.containerd_dir.join("state/s"),
            PathBuf::from("/run/containerd/s"),
        ]
    }

    /// The shim sockets there now.
    pub fn sockets(&self) -> BTreeSet<PathBuf> {
        self.socket_dirs().iter().flat_map(|d| sockets(d)).collect()
    }

    /// The runtime's state entries now.
    fn state(&self) -> BTreeSet<PathBuf> {
        fs::read_dir(&self.runtime_root)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Marks what is there now as not this run's.
    pub fn mark_before(&mut self) {
        self.before = self.sockets().union(&self.state()).cloned().collect();
    }
}

/// One reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_s: u64,
    /// Shim processes of this containerd.
    pub shims: usize,
    /// Their resident set, summed (KiB).
    pub rss_kib: u64,
    /// Their proportional set, summed (KiB).
    pub pss_kib: u64,
    /// Their open descriptors, summed.
    pub fds: u64,
    /// Their threads, summed.
    pub threads: u64,
    /// Mounts under containerd's directory (container rootfs).
    pub mounts: usize,
    /// Container cgroups under the namespace's cgroup.
    pub cgroups: usize,
    /// Entries in the runtime's state directory.
    pub state_entries: usize,
    /// Shim sockets (containerd 2.x: `<state>/s`; also `/run/containerd/s`).
    pub sockets: usize,
    /// FIFOs under containerd's directory.
    pub fifos: usize,
}

impl Sample {
    /// Per-shim average of a summed figure (0 without shims).
    pub fn per_shim(&self, total: u64) -> u64 {
        total.checked_div(self.shims as u64).unwrap_or(0)
    }

    /// What containers hold on the host, by name.
    pub fn held(&self) -> [(&'static str, usize); 5] {
        [
            ("mounts", self.mounts),
            ("cgroups", self.cgroups),
            ("runtime state entries", self.state_entries),
            ("sockets", self.sockets),
            ("FIFOs", self.fifos),
        ]
    }

    /// As JSON, for the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "at_s": self.at_s, "shims": self.shims, "rss_kib": self.rss_kib,
            "pss_kib": self.pss_kib, "fds": self.fds, "threads": self.threads,
            "mounts": self.mounts, "cgroups": self.cgroups,
            "state_entries": self.state_entries, "sockets": self.sockets, "fifos": self.fifos,
        })
    }
}

/// Why the host cannot take much more, if it cannot: under 4 GiB of
/// memory available, or threads at half of `pid_max` (every process and
/// thread takes a pid: beyond it nothing on the host can fork).
pub fn host_short() -> Option<String> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    if kib < 4 << 20 {
        return Some(format!("{} MiB of host memory left", kib >> 10));
    }
    // The fourth field of loadavg: running/total scheduling entities.
    let loadavg = fs::read_to_string("/proc/loadavg").ok()?;
    let threads: u64 = loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()?;
    let pid_max: u64 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (threads > pid_max / 2).then(|| format!("{threads} threads on the host, pid_max {pid_max}"))
}

/// Reads every figure now.
pub fn take(places: &Places, at_s: u64) -> Sample {
    let socket = places.socket.to_string_lossy().into_owned();
    let pids = pids_matching(|cmd| cmd.contains(places.shim) && cmd.contains(&socket));
    let mut s = Sample {
        at_s,
        shims: pids.len(),
        mounts: mounts_under(&places.containerd_dir).len(),
        cgroups: cgroups(places.namespace),
        state_entries: places.state().difference(&places.before).count(),
        sockets: places.sockets().difference(&places.before).count(),
        fifos: fifos(&places.containerd_dir),
        ..Sample::default()
    };
    for pid in pids {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.rss_kib += field_kib(&status, "VmRSS:");
        s.threads += field_kib(&status, "Threads:");
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        s.pss_kib += field_kib(&rollup, "Pss:");
        s.fds += entries(Path::new(&format!("/proc/{pid}/fd"))) as u64;
    }
    s
}

/// The number after `key` on its line of a `/proc` status-like file.
fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Container cgroups under `/<namespace>` (containerd's default
/// `cgroupsPath` for a client's container): the memory hierarchy on cgroup
/// v1, the unified one on v2.
fn cgroups(namespace: &str) -> usize {
    let v1 = Path::new("/sys/fs/cgroup/memory").join(namespace);
    let dir = if Path::new("/sys/fs/cgroup/memory").is_dir() {
        v1
    } else {
        Path::new("/sys/fs/cgroup").join(namespace)
    };
    fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0)
}

fn sockets(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// FIFOs anywhere below `dir` (containerd's stdio FIFOs).
fn fifos(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_fifo() => n += 1,
                // Mount points (container rootfs) are not walked.
                Ok(t) if t.is_dir() && !is_mount_point(&e.path()) => stack.push(e.path()),
                _ => {}
            }
        }
    }
    n
}

fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(p), p.parent().map(fs::metadata)) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_by_key() {
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nThreads:\t3\n";
        assert_eq!(field_kib(status, "VmRSS:"), 2048);
        assert_eq!(field_kib(status, "Threads:"), 3);
        assert_eq!(field_kib(status, "Pss:"), 0);
    }

    #[test]
    fn per_shim_figures_survive_no_shims() {
        let s = Sample {
            shims: 0,
            rss_kib: 10,
            ..Sample::default()
        };
        assert_eq!(s.per_shim(s.rss_kib), 0);
    }
}
