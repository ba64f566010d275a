//! A process's host cgroup files, on cgroup v1 (per-controller trees) and
//! v2 (one tree), for tests that check limits and usage.

use std::{fs, path::PathBuf};

/// Whether the host has the unified (v2) hierarchy only.
pub fn is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of `pid`'s cgroup for `controller` (v1), or its one
/// cgroup (v2; `controller` is then only a name).
pub fn dir_of(pid: u32, controller: &str) -> PathBuf {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in cg.lines() {
        let mut p = l.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (p.next(), p.next(), p.next()) else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if is_v2() && ctrl.is_empty() {
            return PathBuf::from("/sys/fs/cgroup").join(path);
        }
        if ctrl.split(',').any(|c| c == controller) {
            return PathBuf::from("/sys/fs/cgroup").join(ctrl).join(path);
        }
    }
    panic!("pid {pid} has no {controller} cgroup: {cg}");
}

/// A numeric cgroup file, `max` reading as `u64::MAX`.
pub fn read_value(path: PathBuf) -> u64 {
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match text.trim() {
        "max" => u64::MAX,
        v => v
            .parse()
            .unwrap_or_else(|e| panic!("{}: {v:?}: {e}", path.display())),
    }
}

/// The memory limit of `pid`'s cgroup (`u64::MAX`, or v1's huge value,
/// when unlimited).
pub fn memory_limit(pid: u32) -> u64 {
    let file = if is_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    read_value(dir_of(pid, "memory").join(file))
}

/// The CPU quota and period of `pid`'s cgroup, in microseconds (quota
/// `None` when unlimited).
pub fn cpu_quota(pid: u32) -> (Option<u64>, u64) {
    let dir = dir_of(pid, "cpu");
    if is_v2() {
        let text = fs::read_to_string(dir.join("cpu.max")).unwrap();
        let mut f = text.split_whitespace();
        let quota = f.next().and_then(|q| q.parse().ok());
        let period = f.next().and_then(|p| p.parse().ok()).unwrap_or(100_000);
        (quota, period)
    } else {
        let q = fs::read_to_string(dir.join("cpu.cfs_quota_us")).unwrap();
        let quota = q
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|q| u64::try_from(q).ok());
        (quota, read_value(dir.join("cpu.cfs_period_us")))
    }
}

/// The memory in use in `pid`'s cgroup, in bytes.
pub fn memory_usage(pid: u32) -> u64 {
    let file = if is_v2() {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    read_value(dir_of(pid, "memory").join(file))
}
