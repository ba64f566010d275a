//! The sandbox's host cgroup, through `cgroups-rs`: where Stats reads memory,
//! CPU and pids, where Update applies limits when runsc has no `update`
//! subcommand, and where OOM kills are counted. The host mode is probed, not
//! guessed from flags (gvisor#11472).
//!
//! `cgroups-rs` finds the hierarchies (mountinfo), the process's paths
//! (`/proc/<pid>/cgroup`), and reads and writes every controller file. Two
//! things stay here because it does not do them: counting v2 OOM kills
//! (`memory.events`, which it does not parse) and the OCI-to-v2 conversions
//! runc applies (memory+swap to swap alone, shares to weight), which it
//! leaves to the caller. `containerd-shim`'s own `cgroup` module is not used:
//! its v1 metrics leave CPU usage at zero and it panics on unparsable lines.
//! A sandbox in a systemd unit (runsc's systemd driver) gets its limits
//! through systemd ([`systemd`]).

pub mod systemd;

use std::{collections::HashMap, fs, path::PathBuf};

use cgroups_rs::fs::{
    cgroup::get_cgroups_relative_paths_by_pid, cpu::CpuController, cpuacct::CpuAcctController,
    cpuset::CpuSetController, hierarchies, memory::MemController, pid::PidController, Cgroup,
    Controller, MaxValue,
};
use cgroups_rs::CgroupPid;
use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

/// Host cgroup mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Per-controller hierarchies.
    V1,
    /// Unified hierarchy.
    V2,
}

/// The probed host mode.
pub fn mode() -> Mode {
    if hierarchies::is_cgroup2_unified_mode() {
        Mode::V2
    } else {
        Mode::V1
    }
}

/// A process's cgroup on the host.
#[derive(Debug)]
pub struct HostCgroup {
    mode: Mode,
    cgroup: Cgroup,
    /// The path from the hierarchy's root (v2), or the memory controller's
    /// (v1): where a systemd unit shows.
    rel: String,
    /// v2: this cgroup's and its parent's OOM kill counts when loaded (see
    /// [`HostCgroup::oom_kills`]).
    oom_at_load: Option<(u64, u64)>,
}

impl HostCgroup {
    /// The cgroup of `pid` (the sandbox process).
    pub fn for_pid(pid: u32) -> Result<HostCgroup> {
        let what = || format!("read the cgroup of pid {pid}");
        let paths = get_cgroups_relative_paths_by_pid(pid)
            .map_err(|e| Error::Other(format!("{}: {e}", what())))?;
        let mode = mode();
        let (cgroup, rel) = match mode {
            Mode::V2 => {
                let rel = paths.get("").cloned().ok_or_else(|| {
                    Error::Other(format!("{}: no unified hierarchy entry", what()))
                })?;
                let cg = Cgroup::load(hierarchies::auto(), rel.trim_start_matches('/'));
                (cg, rel)
            }
            Mode::V1 => {
                let rel = paths.get("memory").cloned().unwrap_or_default();
                let cg = Cgroup::load_with_relative_paths(hierarchies::auto(), ".", paths);
                (cg, rel)
            }
        };
        let mut cg = HostCgroup {
            mode,
            cgroup,
            rel,
            oom_at_load: None,
        };
        if mode == Mode::V2 {
            cg.oom_at_load = cg
                .own_and_parent_oom_kills()
                .map(|(own, parent)| (own, parent.unwrap_or(0)));
        }
        Ok(cg)
    }

    /// v2: `oom_kill` of this cgroup's `memory.events` (None once the
    /// cgroup is gone) and of its parent's.
    fn own_and_parent_oom_kills(&self) -> Option<(u64, Option<u64>)> {
        let dir = self.memory()?.path().to_path_buf();
        let read = |d: &std::path::Path| {
            fs::read_to_string(d.join("memory.events"))
                .ok()
                .map(|t| keyed(&t).get("oom_kill").copied().unwrap_or(0))
        };
        let own = read(&dir)?;
        Some((own, dir.parent().and_then(read)))
    }

    /// The systemd unit this cgroup is, when systemd made it (runsc's
    /// systemd driver): its limits must then go through systemd.
    pub fn systemd_unit(&self) -> Option<&str> {
        systemd::unit_of_cgroup(&self.rel)
    }

    /// The host mode of this cgroup.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The memory controller (both modes).
    pub fn memory(&self) -> Option<&MemController> {
        self.cgroup.controller_of()
    }

    /// The cpu controller: throttling (v1), every CPU figure (v2).
    pub fn cpu(&self) -> Option<&CpuController> {
        self.cgroup.controller_of()
    }

    /// The cpuacct controller (v1 only).
    pub fn cpuacct(&self) -> Option<&CpuAcctController> {
        self.cgroup.controller_of()
    }

    /// Current pids and their limit (0 = unlimited), in either mode.
    pub fn pids(&self) -> (u64, u64) {
        let Some(p) = self.cgroup.controller_of::<PidController>() else {
            return (0, 0);
        };
        let limit = match p.get_pid_max() {
            Ok(MaxValue::Value(v)) => u64::try_from(v).unwrap_or(0),
            Ok(MaxValue::Max) | Err(_) => 0,
        };
        (p.get_pid_current().unwrap_or(0), limit)
    }

    /// How many times the kernel OOM-killed in this cgroup. On v2 a
    /// systemd scope is removed as soon as its last process is gone, which
    /// an OOM kill of the sandbox makes happen before its exit is seen:
    /// then the count is this cgroup's at load plus the kills its parent
    /// (the pod's slice) counted since (`memory.events` is hierarchical).
    pub fn oom_kills(&self) -> u64 {
        let Some(m) = self.memory() else { return 0 };
        match self.mode {
            Mode::V1 => m.memory_stat().oom_control.oom_kill,
            Mode::V2 => {
                let events = fs::read_to_string(m.path().join("memory.events"));
                match (events, self.oom_at_load) {
                    (Ok(text), _) => keyed(&text).get("oom_kill").copied().unwrap_or(0),
                    (Err(_), Some((own, parent))) => {
                        let parent_now = m
                            .path()
                            .parent()
                            .and_then(|p| fs::read_to_string(p.join("memory.events")).ok())
                            .and_then(|t| keyed(&t).get("oom_kill").copied())
                            .unwrap_or(parent);
                        own + parent_now.saturating_sub(parent)
                    }
                    (Err(_), None) => 0,
                }
            }
        }
    }

    /// Applies CPU, memory and pids limits (what `runsc update` would do):
    /// as unit properties when systemd owns the cgroup, else in its files.
    /// Blocking (D-Bus, cgroup files).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        match self.systemd_unit() {
            Some(unit) => systemd::set(unit, r, self.mode),
            None => self.write_limits(r),
        }
    }

    fn write_limits(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            let mem = self.need::<MemController>("memory")?;
            if let Some(l) = m.limit() {
                if self.mode == Mode::V1 {
                    // memsw must stay >= limit: raise it first when both grow.
                    if let Some(s) = m.swap() {
                        let _ = mem.set_memswap_limit(s);
                    }
                }
                mem.set_limit(l)
                    .map_err(|e| write_err("memory limit", l, e))?;
            }
            if let Some(s) = m.swap() {
                let s = match (self.mode, m.limit()) {
                    // OCI swap is memory+swap; v2 wants swap alone.
                    (Mode::V2, Some(l)) if s >= 0 => (s - l).max(0),
                    _ => s,
                };
                mem.set_memswap_limit(s)
                    .map_err(|e| write_err("swap limit", s, e))?;
            }
            if let Some(res) = m.reservation() {
                mem.set_soft_limit(res)
                    .map_err(|e| write_err("memory reservation", res, e))?;
            }
        }
        if let Some(c) = r.cpu() {
            if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
                let cpu = self.need::<CpuController>("cpu")?;
                if let Some(s) = c.shares() {
                    let v = match self.mode {
                        Mode::V1 => s,
                        Mode::V2 => shares_to_weight(s),
                    };
                    cpu.set_shares(v)
                        .map_err(|e| write_err("cpu shares", v, e))?;
                }
                if c.quota().is_some() || c.period().is_some() {
                    cpu.set_cfs_quota_and_period(c.quota(), c.period())
                        .map_err(|e| write_err("cpu quota/period", format!("{c:?}"), e))?;
                }
            }
            if c.cpus().is_some() || c.mems().is_some() {
                let set = self.need::<CpuSetController>("cpuset")?;
                if let Some(cpus) = c.cpus() {
                    set.set_cpus(cpus)
                        .map_err(|e| write_err("cpuset cpus", cpus, e))?;
                }
                if let Some(mems) = c.mems() {
                    set.set_mems(mems)
                        .map_err(|e| write_err("cpuset mems", mems, e))?;
                }
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                MaxValue::Value(p.limit())
            } else {
                MaxValue::Max
            };
            self.need::<PidController>("pids")?
                .set_pid_max(v)
                .map_err(|e| write_err("pids limit", p.limit(), e))?;
        }
        Ok(())
    }

    fn need<T>(&self, name: &str) -> Result<&T>
    where
        T: cgroups_rs::fs::ControllIdentifier + Controller,
        for<'a> &'a T: From<&'a cgroups_rs::fs::Subsystem>,
    {
        self.cgroup
            .controller_of::<T>()
            .ok_or_else(|| Error::FailedPrecondition(format!("sandbox has no {name} cgroup")))
    }
}

/// The conversion runc uses from CPU shares (v1) to weight (v2).
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

fn write_err(what: &str, value: impl std::fmt::Display, e: cgroups_rs::fs::error::Error) -> Error {
    Error::Other(format!("set {what} to {value}: {e}"))
}

/// Parses a flat keyed file (`cpu.stat`, `memory.events`, `memory.stat`).
pub fn keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Moves `pid` into the cgroup at `path` (relative to each hierarchy's root),
/// creating it where missing.
pub fn add_pid(path: &str, pid: u32) -> Result<()> {
    let rel = PathBuf::from(path.trim_start_matches('/'));
    let cgroup = Cgroup::load(hierarchies::auto(), &rel);
    cgroup
        .create()
        .and_then(|()| cgroup.add_task_by_tgid(CgroupPid::from(u64::from(pid))))
        .map_err(|e| Error::Other(format!("move pid {pid} into cgroup {path}: {e}")))
}

/// Removes the cgroup runsc made for a container at `path` (the spec's
/// absolute `cgroupsPath`) in every hierarchy where it is left and empty:
/// runsc leaves it when its create was cut short, or when a pod member is
/// deleted after its sandbox went. Blocking: tries for up to 5 s, as v1's
/// memory controller says busy for a moment after the last process left,
/// and a sandbox killed a moment ago may still be exiting (the soak's
/// shim kill left a cgroup when this gave up after 200 ms). A
/// systemd-style or relative path is left alone.
pub fn remove_leftover(path: &std::path::Path) {
    let Ok(rel) = path.strip_prefix("/") else {
        return;
    };
    let plain = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if rel.as_os_str().is_empty() || !plain {
        return;
    }
    let base = std::path::Path::new("/sys/fs/cgroup");
    let Ok(hierarchies) = std::fs::read_dir(base) else {
        return;
    };
    let mut left: Vec<std::path::PathBuf> = std::iter::once(base.join(rel))
        .chain(hierarchies.flatten().map(|h| h.path().join(rel)))
        .filter(|d| d.is_dir())
        .collect();
    for _ in 0..250 {
        left.retain(|d| std::fs::remove_dir(d).is_err() && d.is_dir());
        if left.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_skip_lines_that_are_not_pairs() {
        let k = keyed("oom 1\noom_kill 3\ngarbage\nlow x\n");
        assert_eq!(k.get("oom_kill"), Some(&3));
        assert_eq!(k.get("oom"), Some(&1));
        assert!(!k.contains_key("low") && !k.contains_key("garbage"));
    }

    #[test]
    fn the_test_process_has_a_readable_cgroup() {
        let cg = HostCgroup::for_pid(std::process::id()).unwrap();
        assert_eq!(cg.mode(), mode());
        // Our own memory cgroup charges at least this process.
        let mem = cg.memory().unwrap().memory_stat();
        assert!(mem.usage_in_bytes > 0, "{mem:?}");
    }
}
