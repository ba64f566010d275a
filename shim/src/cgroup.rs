//! The sandbox's host cgroup: where Stats reads memory/CPU/pids, where Update
//! applies limits when runsc has no `update` subcommand, and where OOM kills
//! are detected (v1: eventfd on `memory.oom_control`; v2: `memory.events`).
//! The host mode is probed, not guessed from flags (gvisor#11472).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";

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
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        Mode::V2
    } else {
        Mode::V1
    }
}

/// A process's cgroup on the host.
#[derive(Debug, Clone)]
pub struct HostCgroup {
    mode: Mode,
    /// v1: controller -> directory; v2: "" -> directory.
    dirs: HashMap<String, PathBuf>,
}

impl HostCgroup {
    /// The cgroup of `pid` (the sandbox process).
    pub fn for_pid(pid: u32) -> Result<HostCgroup> {
        let path = format!("/proc/{pid}/cgroup");
        let text = fs::read_to_string(&path).map_err(|e| Error::os(format!("read {path}"), e))?;
        Ok(Self::parse(mode(), &text))
    }

    fn parse(mode: Mode, text: &str) -> HostCgroup {
        let mut dirs = HashMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, rel) = match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => continue,
            };
            let rel = rel.trim_start_matches('/');
            match mode {
                Mode::V2 if ctrls.is_empty() => {
                    dirs.insert(String::new(), Path::new(ROOT).join(rel));
                }
                Mode::V1 if !ctrls.is_empty() => {
                    for c in ctrls.split(',') {
                        let c = c.trim_start_matches("name=");
                        let joined = Path::new(ROOT).join(ctrls);
                        let base = if joined.exists() {
                            joined
                        } else {
                            Path::new(ROOT).join(c)
                        };
                        dirs.insert(c.to_string(), base.join(rel));
                    }
                }
                _ => {}
            }
        }
        HostCgroup { mode, dirs }
    }

    /// The host mode of this cgroup.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Directory of `controller` (ignored on v2).
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        match self.mode {
            Mode::V1 => self.dirs.get(controller).map(PathBuf::as_path),
            Mode::V2 => self.dirs.get("").map(PathBuf::as_path),
        }
    }

    /// Reads `<controller dir>/<file>` trimmed.
    pub fn read(&self, controller: &str, file: &str) -> Option<String> {
        let p = self.dir(controller)?.join(file);
        fs::read_to_string(p).ok().map(|s| s.trim().to_string())
    }

    /// Reads a number; "max" counts as u64::MAX.
    pub fn read_u64(&self, controller: &str, file: &str) -> Option<u64> {
        let s = self.read(controller, file)?;
        if s == "max" {
            return Some(u64::MAX);
        }
        s.split_whitespace().next()?.parse().ok()
    }

    /// Parses a flat keyed file (`memory.stat`, `cpu.stat`, `memory.events`).
    pub fn read_keyed(&self, controller: &str, file: &str) -> HashMap<String, u64> {
        self.read(controller, file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.parse().ok()?))
            })
            .collect()
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        let dir = self.dir(controller).ok_or_else(|| {
            Error::FailedPrecondition(format!("sandbox has no {controller} cgroup"))
        })?;
        let p = dir.join(file);
        fs::write(&p, value).map_err(|e| Error::os(format!("write {value} to {}", p.display()), e))
    }

    /// Current pids and their limit (0 = unlimited), in either mode.
    pub fn pids(&self) -> (u64, u64) {
        let current = self.read_u64("pids", "pids.current").unwrap_or(0);
        let limit = match self.read_u64("pids", "pids.max") {
            Some(u64::MAX) | None => 0,
            Some(v) => v,
        };
        (current, limit)
    }

    /// How many times the kernel OOM-killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        match self.mode {
            Mode::V1 => self.read_keyed("memory", "memory.oom_control"),
            Mode::V2 => self.read_keyed("", "memory.events"),
        }
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
    }

    /// Applies CPU, memory and pids limits (what `runsc update` would do).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        match self.mode {
            Mode::V1 => self.update_v1(r),
            Mode::V2 => self.update_v2(r),
        }
    }

    fn update_v1(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                // With a swap limit set, memsw must stay >= limit: raise it first.
                if let Some(s) = m.swap() {
                    let _ = self.write("memory", "memory.memsw.limit_in_bytes", &s.to_string());
                }
                self.write("memory", "memory.limit_in_bytes", &l.to_string())?;
            }
            if let Some(s) = m.swap() {
                self.write("memory", "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
            if let Some(res) = m.reservation() {
                self.write("memory", "memory.soft_limit_in_bytes", &res.to_string())?;
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares() {
                self.write("cpu", "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                self.write("cpu", "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                self.write("cpu", "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                self.write("cpuset", "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                self.write("cpuset", "cpuset.mems", mems)?;
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            self.write("pids", "pids.max", &v)?;
        }
        Ok(())
    }

    fn update_v2(&self, r: &LinuxResources) -> Result<()> {
        let max = |v: i64| {
            if v < 0 {
                "max".to_string()
            } else {
                v.to_string()
            }
        };
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                self.write("", "memory.max", &max(l))?;
            }
            if let Some(res) = m.reservation() {
                self.write("", "memory.low", &max(res))?;
            }
            if let (Some(s), Some(l)) = (m.swap(), m.limit()) {
                // OCI swap is memory+swap; v2 wants swap alone.
                let swap = if s < 0 { -1 } else { (s - l).max(0) };
                self.write("", "memory.swap.max", &max(swap))?;
            }
        }
        if let Some(c) = r.cpu() {
            if c.quota().is_some() || c.period().is_some() {
                let q = c.quota().map(max).unwrap_or_else(|| "max".into());
                let p = c.period().unwrap_or(100_000);
                self.write("", "cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(s) = c.shares() {
                // The conversion runc uses from shares to weight.
                let w = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
                self.write("", "cpu.weight", &w.to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                self.write("", "cpuset.cpus", cpus)?;
            }
        }
        if let Some(p) = r.pids() {
            self.write("", "pids.max", &max(p.limit()))?;
        }
        Ok(())
    }
}

/// Moves `pid` into the cgroup at `path` (relative to each hierarchy's root).
pub fn add_pid(path: &str, pid: u32) -> Result<()> {
    let rel = path.trim_start_matches('/');
    let targets: Vec<PathBuf> = match mode() {
        Mode::V2 => vec![Path::new(ROOT).join(rel)],
        Mode::V1 => fs::read_dir(ROOT)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path().join(rel))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut done = false;
    for dir in targets {
        if fs::create_dir_all(&dir).is_ok()
            && fs::write(dir.join("cgroup.procs"), pid.to_string()).is_ok()
        {
            done = true;
        }
    }
    if done {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "no cgroup hierarchy accepted pid {pid} into {path}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_proc_cgroup() {
        let v1 = "12:memory:/default/c1\n4:pids:/default/c1\n1:name=systemd:/x\n";
        let cg = HostCgroup::parse(Mode::V1, v1);
        assert_eq!(
            cg.dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/default/c1")
        );
        assert_eq!(
            cg.dir("pids").unwrap(),
            Path::new("/sys/fs/cgroup/pids/default/c1")
        );
        let v2 = "0::/kubepods/pod1/c1\n";
        let cg = HostCgroup::parse(Mode::V2, v2);
        assert_eq!(
            cg.dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/kubepods/pod1/c1")
        );
    }
}
