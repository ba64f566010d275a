//! The host's process table as the benchmark reads it: a shim's kept
//! processes (its descendants other than runsc's sandbox and gofers), PSS
//! and CPU times from `/proc`.

use std::fs;

use serde_json::json;

/// One process.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Process id.
    pub pid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// Command line.
    pub argv: Vec<String>,
}

impl Proc {
    /// Reads `/proc/<pid>`.
    pub fn of(pid: i32) -> Option<Proc> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid = stat_fields(&stat).get(1)?.parse().ok()?;
        let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Some(Proc { pid, ppid, argv })
    }

    /// runsc's sandbox (`runsc-sandbox ... boot`) or a gofer
    /// (`runsc-gofer ... gofer`): what runs the containers, not what the
    /// shim keeps for itself.
    pub fn is_sandbox_or_gofer(&self) -> bool {
        let argv0 = self.argv.first().map(String::as_str).unwrap_or_default();
        let base = argv0.rsplit('/').next().unwrap_or_default();
        base.starts_with("runsc-sandbox")
            || base.starts_with("runsc-gofer")
            || (base.starts_with("runsc")
                && self.verb().is_some_and(|v| v == "boot" || v == "gofer"))
    }

    /// The first argument that is not a flag (the runsc subcommand).
    pub fn verb(&self) -> Option<&str> {
        runsc_verb(self.argv.iter().skip(1).map(String::as_str))
    }

    /// JSON for the report: pid and the command line (shortened).
    pub fn json(&self) -> serde_json::Value {
        let cmd = self.argv.join(" ");
        let cmd: String = cmd.chars().take(160).collect();
        json!({"pid": self.pid, "cmdline": cmd, "pss_kb": pss(self.pid)})
    }
}

/// The subcommand in runsc arguments: the first word that is neither a
/// flag nor the value of a global flag given as `--flag value`.
pub fn runsc_verb<'a>(args: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    const WITH_VALUE: [&str; 4] = ["--root", "--log", "--log-format", "--panic-log"];
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with('-') {
            skip = WITH_VALUE.contains(&a);
        } else {
            return Some(a);
        }
    }
    None
}

/// `/proc/<pid>/stat` from field 3 (state) on: the command name may hold
/// spaces, so split after its closing parenthesis.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// Every process on the host.
pub fn all() -> Vec<Proc> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .filter_map(Proc::of)
        .collect()
}

/// The processes `shim` keeps: its descendants, except runsc's sandbox and
/// gofer processes and what runs under them.
pub fn kept(shim: i32) -> Vec<Proc> {
    let procs = all();
    let mut out = Vec::new();
    let mut parents = vec![shim];
    while let Some(p) = parents.pop() {
        for c in procs.iter().filter(|c| c.ppid == p) {
            if !c.is_sandbox_or_gofer() {
                parents.push(c.pid);
                out.push(c.clone());
            }
        }
    }
    out
}

/// The nearest ancestor of `pid` (itself included) whose command is a
/// containerd shim.
pub fn shim_of(pid: i32) -> Option<i32> {
    let mut p = pid;
    for _ in 0..8 {
        let proc = Proc::of(p)?;
        if proc
            .argv
            .first()
            .is_some_and(|a| a.contains("containerd-shim"))
        {
            return Some(p);
        }
        p = proc.ppid;
    }
    None
}

/// `Pss:` of `/proc/<pid>/smaps_rollup` (kB; 0 if it is gone).
pub fn pss(pid: i32) -> u64 {
    rollup(pid).0
}

/// `Pss:` and `Private_Clean:` + `Private_Dirty:` (what only this process
/// maps) of `/proc/<pid>/smaps_rollup` (kB; 0 if it is gone).
pub fn rollup(pid: i32) -> (u64, u64) {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |key: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, 100 per second on
/// every architecture the kernel exports it for.
const MS_PER_TICK: f64 = 10.0;

/// CPU times of one process (ms): its own (all threads) and those of its
/// children it has reaped (which include what those children reaped).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// utime + stime.
    pub own: f64,
    /// cutime + cstime.
    pub children: f64,
}

impl Cpu {
    /// Reads `/proc/<pid>/stat` (`self` for the benchmark itself).
    pub fn of(pid: &str) -> Option<Cpu> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f = stat_fields(&stat);
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields 14-17 of stat(5): utime stime cutime cstime.
        Some(Cpu {
            own: (tick(11) + tick(12)) * MS_PER_TICK,
            children: (tick(13) + tick(14)) * MS_PER_TICK,
        })
    }

    /// What was spent between `self` (before) and `after`.
    pub fn since(self, after: Cpu) -> Cpu {
        Cpu {
            own: after.own - self.own,
            children: after.children - self.children,
        }
    }

    /// Own plus children.
    pub fn total(&self) -> f64 {
        self.own + self.children
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        let v = |s: &str| runsc_verb(s.split_whitespace()).map(str::to_string);
        assert_eq!(
            v("--root /r --log=/l create --bundle b x").as_deref(),
            Some("create")
        );
        assert_eq!(
            v("--network=none exec x /bin/true").as_deref(),
            Some("exec")
        );
        assert_eq!(v("--root=/r").as_deref(), None);
    }

    #[test]
    fn sandbox_and_gofer() {
        let p = |a: &str| Proc {
            pid: 1,
            ppid: 0,
            argv: a.split_whitespace().map(String::from).collect(),
        };
        assert!(p("runsc-sandbox --root=/r boot --bundle=b x").is_sandbox_or_gofer());
        assert!(p("runsc-gofer --root=/r gofer --bundle b").is_sandbox_or_gofer());
        assert!(!p("runsc --root=/r wait x").is_sandbox_or_gofer());
        assert!(!p("/usr/bin/runsc --root /r exec x /bin/true").is_sandbox_or_gofer());
    }

    #[test]
    fn own_stat() {
        let me = Proc::of(std::process::id() as i32).expect("self");
        assert!(me.ppid > 0);
        assert!(Cpu::of("self").is_some());
    }
}
