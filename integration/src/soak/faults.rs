//! Faults landed in the middle of a soak, one every interval, taking turns:
//! a sandbox, a gofer or a shim SIGKILLed, containerd restarted or stopped
//! for a while (its end of every shim's pipes and sockets unread), the
//! shims' log pipes filled, a busy container paused and resumed, one runsc
//! call made to hang. Targets are
//! picked at random among this run's processes (a fixed seed, so a run can
//! be repeated). What each did is logged for the report.

use std::{
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use test_support::{containerd::Containerd, host::pids_matching};

use super::{sample::Places, NAMESPACE};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a sandbox (`runsc-sandbox`): its containers die.
    KillSandbox,
    /// SIGKILL a gofer (`runsc-gofer`): its container's files go away.
    KillGofer,
    /// SIGKILL a shim: containerd reports its tasks gone.
    KillShim,
    /// Restart containerd (SIGTERM, start again): shims carry on.
    RestartContainerd,
    /// SIGSTOP containerd for 5 s: nothing reads the shims' logs, events
    /// or replies meanwhile.
    StallContainerd,
    /// Pause a running task for a second, then resume it.
    PauseResume,
    /// The next runsc call sleeps 20 s before it runs.
    HangRunsc,
    /// Fill every shim's log FIFO (containerd stopped, so nothing drains
    /// it) and SIGKILL a sandbox: its shim must report the exits with its
    /// log pipe full. containerd continues after 5 s.
    FillLogPipe,
}

impl Fault {
    /// Every fault, in the order they take turns.
    pub const ALL: [Fault; 8] = [
        Fault::KillSandbox,
        Fault::PauseResume,
        Fault::KillGofer,
        Fault::StallContainerd,
        Fault::KillShim,
        Fault::HangRunsc,
        Fault::FillLogPipe,
        Fault::RestartContainerd,
    ];

    /// Parses a fault's short name: `sandbox`, `gofer`, `shim`,
    /// `restart`, `stall`, `pause`, `hang`, `log`.
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "sandbox" => Fault::KillSandbox,
            "gofer" => Fault::KillGofer,
            "shim" => Fault::KillShim,
            "restart" => Fault::RestartContainerd,
            "stall" => Fault::StallContainerd,
            "pause" => Fault::PauseResume,
            "hang" => Fault::HangRunsc,
            "log" => Fault::FillLogPipe,
            _ => return None,
        })
    }

    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Fault::KillSandbox => "SIGKILL sandbox",
            Fault::KillGofer => "SIGKILL gofer",
            Fault::KillShim => "SIGKILL shim",
            Fault::RestartContainerd => "restart containerd",
            Fault::StallContainerd => "SIGSTOP containerd 5 s",
            Fault::PauseResume => "pause/resume a task",
            Fault::HangRunsc => "hang one runsc call 20 s",
            Fault::FillLogPipe => "fill the shims' log pipes, SIGKILL a sandbox",
        }
    }
}

/// The file whose presence makes the next runsc call hang (see
/// [`runsc_wrapper`]).
pub fn hang_flag(work: &Path) -> PathBuf {
    work.join("hang-next-runsc-call")
}

/// A `runsc` (or, for the Go shim, `runc`) that runs `real` with `extra`
/// flags first, after sleeping 20 s if the hang flag is there (taken by
/// exactly one call: `rm` succeeds once).
pub fn runsc_wrapper(real: &Path, extra: &str, flag: &Path) -> String {
    format!(
        "#!/bin/sh\nif rm {flag} 2>/dev/null; then sleep 20; fi\nexec {real} {extra} \"$@\"\n",
        flag = flag.display(),
        real = real.display(),
    )
}

/// Lands the faults of one run.
pub struct Injector {
    kinds: Vec<Fault>,
    turn: usize,
    rng: u64,
    flag: PathBuf,
    /// (seconds into the run, fault, what was done)
    pub log: Vec<(u64, Fault, String)>,
    /// The containers whose shim was killed.
    pub dead_shims: Vec<String>,
}

impl Injector {
    /// An injector of `kinds` (in turn) whose hang fault sets `flag`.
    pub fn new(kinds: Vec<Fault>, flag: PathBuf) -> Injector {
        Injector {
            kinds,
            turn: 0,
            rng: 0x5eed_5eed,
            flag,
            log: Vec::new(),
            dead_shims: Vec::new(),
        }
    }

    /// Lands the next fault.
    pub fn land(&mut self, at_s: u64, c: &mut Containerd, places: &Places) {
        let Some(&fault) = self.kinds.get(self.turn % self.kinds.len().max(1)) else {
            return;
        };
        self.turn += 1;
        let what = match fault {
            Fault::KillSandbox => self.kill_one("runsc-sandbox", places),
            Fault::KillGofer => self.kill_one("runsc-gofer", places),
            Fault::KillShim => {
                let socket = places.socket.to_string_lossy().into_owned();
                let pids = pids_matching(|cmd| cmd.contains(places.shim) && cmd.contains(&socket));
                if pids.is_empty() {
                    "no target".to_string()
                } else {
                    let pid = pids[self.next(pids.len())];
                    // Read before the kill: whose exits containerd will not send.
                    if let Some(id) = shim_id(pid) {
                        self.dead_shims.push(id);
                    }
                    self.kill_pid(&[pid])
                }
            }
            Fault::RestartContainerd => {
                c.restart();
                "restarted".to_string()
            }
            Fault::StallContainerd => stalled(c, String::new),
            Fault::FillLogPipe => stalled(c, || {
                let filled = fill_log_pipes(&places.containerd_dir, places.namespace);
                format!(
                    "{filled} pipes filled, {}",
                    self.kill_one("runsc-sandbox", places)
                )
            }),
            Fault::PauseResume => self.pause_resume(c),
            Fault::HangRunsc => match std::fs::write(&self.flag, "") {
                Ok(()) => "flag set".into(),
                Err(e) => format!("flag: {e}"),
            },
        };
        self.log.push((at_s, fault, what));
    }

    fn next(&mut self, n: usize) -> usize {
        // xorshift64: a fixed sequence, so a run can be repeated.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n.max(1) as u64) as usize
    }

    /// SIGKILLs one process named `name` of this runtime's root.
    fn kill_one(&mut self, name: &str, places: &Places) -> String {
        let root = places.runtime_root.to_string_lossy().into_owned();
        let pids = pids_matching(|cmd| cmd.starts_with(name) && cmd.contains(&root));
        self.kill_pid(&pids)
    }

    fn kill_pid(&mut self, pids: &[i32]) -> String {
        if pids.is_empty() {
            return "no target".into();
        }
        let pid = pids[self.next(pids.len())];
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) => format!("pid {pid}"),
            Err(e) => format!("pid {pid}: {e}"),
        }
    }

    fn pause_resume(&mut self, c: &Containerd) -> String {
        let ctr = |args: &[&str]| {
            c.ctr_cmd()
                .args(["-n", NAMESPACE])
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let list = c
            .ctr_cmd()
            .args(["-n", NAMESPACE, "tasks", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let running: Vec<&str> = list
            .lines()
            .filter(|l| l.contains("RUNNING"))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        if running.is_empty() {
            return "no target".into();
        }
        let id = running[self.next(running.len())].to_string();
        let paused = ctr(&["tasks", "pause", &id]);
        thread::sleep(Duration::from_secs(1));
        let resumed = ctr(&["tasks", "resume", &id]);
        format!("{id}: paused {paused}, resumed {resumed}")
    }
}

/// The `-id` a shim process was started with (its container).
fn shim_id(pid: i32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args.iter().position(|a| a == "-id")?;
    args.get(at + 1).cloned()
}

/// The shim sockets of `left` that containerd itself stranded: a shim the
/// faults killed (`dead_shims`, by container id) after its `start` had
/// answered but before containerd dialled it. The dial fails, and
/// containerd runs `shim delete` only after a connection it had closes
/// ("cleaning up after shim disconnected"), so nothing of the runtime's
/// runs for that container again and nothing removes the socket (its Go
/// shims leave theirs the same way). `log` is containerd's: the socket's
/// container is the one it logged `connecting to shim <id>` to it for.
pub fn stranded_by_containerd(log: &str, left: &[PathBuf], dead_shims: &[String]) -> Vec<PathBuf> {
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(key)? + key.len();
        let rest = &line[at..];
        let end = rest.find(['"', ' ']).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    };
    let mut dialled = std::collections::HashMap::new();
    let mut cleaned = std::collections::HashSet::new();
    for line in log.lines() {
        if line.contains("msg=\"connecting to shim ") {
            if let (Some(id), Some(address)) = (
                field(line, "connecting to shim "),
                field(line, "address=\"unix://"),
            ) {
                dialled.insert(PathBuf::from(address), id);
            }
        } else if line.contains("msg=\"cleaning up after shim disconnected\"") {
            if let Some(id) = field(line, " id=") {
                cleaned.insert(id);
            }
        }
    }
    left.iter()
        .filter(|socket| {
            dialled
                .get(*socket)
                .is_some_and(|id| dead_shims.contains(id) && !cleaned.contains(id))
        })
        .cloned()
        .collect()
}

/// Runs `during` with containerd stopped (SIGSTOP), and 5 s of it, then
/// lets containerd go on.
fn stalled(c: &Containerd, during: impl FnOnce() -> String) -> String {
    let Some(pid) = c.pid() else {
        return "containerd not running".into();
    };
    let pid = Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGSTOP);
    let started = std::time::Instant::now();
    let what = during();
    thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    let _ = kill(pid, Signal::SIGCONT);
    format!(
        "containerd pid {pid}: stopped 5 s{}{what}",
        if what.is_empty() { "" } else { "; " }
    )
}

/// Writes into every shim log FIFO of `namespace` until it is full (the
/// write would block); how many were filled. containerd copies what is
/// there into its own log once it reads again.
fn fill_log_pipes(containerd_dir: &Path, namespace: &str) -> usize {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let dir = containerd_dir
        .join("state/io.containerd.runtime.v2.task")
        .join(namespace);
    let Ok(bundles) = std::fs::read_dir(dir) else {
        return 0;
    };
    let line = [b"soak: filling the shim log pipe\n".as_slice(); 128].concat();
    let mut filled = 0;
    for b in bundles.flatten() {
        let open = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(b.path().join("log"));
        let Ok(mut fifo) = open else { continue };
        // A pipe holds 64 KiB by default, at most 1 MiB.
        for _ in 0..(1 << 20) / line.len() + 1 {
            match fifo.write(&line) {
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    filled += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::stranded_by_containerd;

    /// From the 30-minute run: the shim of 1-309 was killed between its
    /// start and containerd's dial; 1-310's was killed once connected.
    const LOG: &str = r#"time="t" level=info msg="connecting to shim 1-309" address="unix:///run/containerd/s/aa" namespace=stress protocol=ttrpc version=3
time="t" level=error msg="copy shim log" error="read /proc/self/fd/51: file already closed" namespace=stress
time="t" level=info msg="connecting to shim 1-310" address="unix:///run/containerd/s/bb" namespace=stress protocol=ttrpc version=3
time="t" level=info msg="connecting to shim 1-311" address="unix:///run/containerd/s/cc" namespace=stress protocol=ttrpc version=3
time="t" level=info msg="shim disconnected" id=1-310 namespace=stress
time="t" level=info msg="cleaning up after shim disconnected" id=1-310 namespace=stress
"#;

    #[test]
    fn a_socket_is_containerds_only_if_its_shim_was_killed_and_never_cleaned_up_after() {
        let left: Vec<PathBuf> = ["aa", "bb", "cc", "dd"]
            .iter()
            .map(|h| PathBuf::from(format!("/run/containerd/s/{h}")))
            .collect();
        let dead = vec!["1-309".to_string(), "1-310".to_string()];
        assert_eq!(
            stranded_by_containerd(LOG, &left, &dead),
            vec![PathBuf::from("/run/containerd/s/aa")]
        );
        // A socket whose shim nobody killed stays the shim's.
        assert!(stranded_by_containerd(LOG, &left, &[]).is_empty());
    }
}
