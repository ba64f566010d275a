//! Deadlines for runsc calls and how a call that overran is ended.
//!
//! A runsc call can hang (`--platform=kvm` on a host whose KVM does not work
//! hangs `runsc create` forever), and a hung `runsc create` holds a gofer and
//! a half-booted sandbox. Each verb gets a deadline ([`Timeouts`]); when it
//! passes, or when the caller stops waiting, the whole process tree under
//! that runsc child is killed ([`kill_tree`]), so nothing is left behind.

use std::{collections::BTreeMap, time::Duration};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// Per-subcommand deadlines. A subcommand without one runs unbounded: the
/// foreground calls whose duration is the container's (`wait`, attached
/// `exec`, `run`, the `events` stream) have none by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    by_verb: BTreeMap<String, Duration>,
}

/// Default deadlines: generous multiples of what each call costs on a
/// loaded 2-core host (create ≈ 150 ms, start ≈ 50 ms, the rest ≈ 30 ms),
/// long enough for a busy node, short enough that a hang is reported.
const DEFAULTS: &[(&str, u64)] = &[
    ("create", 120),
    ("start", 60),
    ("restore", 600),
    ("checkpoint", 600),
    ("delete", 60),
    ("kill", 30),
    ("pause", 60),
    ("resume", 60),
    ("ps", 30),
    ("state", 30),
    ("list", 30),
    ("events", 30),
    ("update", 30),
    ("exec-detach", 60),
    ("flags", 30),
    ("help", 30),
    ("version", 30),
];

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            by_verb: DEFAULTS
                .iter()
                .map(|(v, s)| (v.to_string(), Duration::from_secs(*s)))
                .collect(),
        }
    }
}

impl Timeouts {
    /// No deadline for anything.
    pub fn none() -> Self {
        Timeouts {
            by_verb: BTreeMap::new(),
        }
    }

    /// Sets (or with `None` removes) the deadline of `verb`. `exec-detach`
    /// names `exec --detach`; attached `exec` lasts as long as the process.
    pub fn set(mut self, verb: &str, timeout: Option<Duration>) -> Self {
        match timeout {
            Some(t) => self.by_verb.insert(verb.to_string(), t),
            None => self.by_verb.remove(verb),
        };
        self
    }

    /// The deadline of `verb`, if it has one.
    pub fn get(&self, verb: &str) -> Option<Duration> {
        self.by_verb.get(verb).copied()
    }

    /// The verbs that take a deadline (for validating configuration).
    pub fn known_verbs() -> impl Iterator<Item = &'static str> {
        DEFAULTS
            .iter()
            .map(|(v, _)| *v)
            .chain(["exec", "wait", "run"])
    }
}

/// Pids of every live descendant of `root` (children first found through
/// each process's parent pid in `/proc`).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = parent_pid(pid) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid from `/proc/<pid>/stat` (the field after the command
/// name, which may itself hold spaces and parentheses).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// SIGKILLs `root`, its process group and every descendant (collected
/// before the kill, since killed parents reparent their children).
/// `root` must not have been reaped yet, so its pid cannot be reused.
pub fn kill_tree(root: u32) {
    let tree = descendants(root);
    let Ok(raw) = i32::try_from(root) else {
        return;
    };
    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
    // runsc children are their own process group leaders.
    let _ = kill(Pid::from_raw(-raw), Signal::SIGKILL);
    for pid in tree {
        if let Ok(p) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let t = Timeouts::default();
        assert_eq!(t.get("create"), Some(Duration::from_secs(120)));
        assert_eq!(t.get("wait"), None);
        assert_eq!(t.get("exec"), None);
        let t = t
            .set("create", Some(Duration::from_millis(5)))
            .set("kill", None);
        assert_eq!(t.get("create"), Some(Duration::from_millis(5)));
        assert_eq!(t.get("kill"), None);
        assert_eq!(Timeouts::none().get("create"), None);
        assert!(Timeouts::known_verbs().any(|v| v == "exec-detach"));
    }

    #[test]
    fn finds_and_kills_a_tree() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut kids = descendants(pid);
        while kids.len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            kids = descendants(pid);
        }
        assert_eq!(kids.len(), 2, "{kids:?}");
        kill_tree(pid);
        let _ = child.wait();
        for k in kids {
            // Orphans go to init (or a subreaper) and are reaped there.
            let gone = (0..200).any(|_| {
                std::thread::sleep(Duration::from_millis(10));
                std::fs::read_to_string(format!("/proc/{k}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true)
            });
            assert!(gone, "pid {k} survived");
        }
    }
}
