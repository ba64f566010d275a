//! A client for a running sandbox's control server: the calls `runsc exec`,
//! `wait`, `kill`, `ps`, `events --stats`, `pause` and `resume` make, made
//! directly (gVisor's `urpc` over the socket `runsc create` bound), so the
//! hot paths spawn no runsc process.
//!
//! Only the two wire dialects read from gVisor's source and checked against
//! the binaries are spoken ([`Dialect`]); the caller decides by
//! `runsc --version`, and every failure that says the dialect is wrong is a
//! [`ControlFailure::Protocol`], on which the caller falls back to the CLI.
//! Creating, starting sub-containers (runsc spawns their gofer then),
//! deleting, checkpoint and restore stay with the CLI.
//!
//! - [`urpc`]: the wire format and one connection.
//! - [`state`]: runsc's state file: the socket address, the owner, and the
//!   `status` a direct pause or resume must record.
//! - [`process`]: `ExecArgs` from an OCI process.
//! - [`start`]: starting a root container whose network needs no host work.

pub mod process;
pub mod start;
pub mod state;
pub mod urpc;

use std::{
    collections::HashMap,
    os::fd::{AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{error::Error, types::Stats, Result};
use process::ExecArgs;
use state::StateFile;
use urpc::{Address, CallError, Conn};

/// The wire dialect of a runsc release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// runsc 0.0~20221219: abstract socket, `Lifecycle.Pause`, `Event(null)`.
    R20221219,
    /// runsc 0.0~20240729: socket file, `containerManager.Pause`,
    /// `Event(cid)`, `GuestFDs` on exec.
    R20240729,
}

impl Dialect {
    /// The dialect of a `runsc --version` token, if it is one we speak.
    pub fn for_version(version: &str) -> Option<Dialect> {
        match crate::release_date(version)? {
            20221219 => Some(Dialect::R20221219),
            20240729 => Some(Dialect::R20240729),
            _ => None,
        }
    }

    fn pause_method(self, resume: bool) -> &'static str {
        match (self, resume) {
            (Dialect::R20221219, false) => "Lifecycle.Pause",
            (Dialect::R20221219, true) => "Lifecycle.Resume",
            (Dialect::R20240729, false) => "containerManager.Pause",
            (Dialect::R20240729, true) => "containerManager.Resume",
        }
    }
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlFailure {
    /// The sandbox carried out the call and answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The answer shows the sandbox speaks another dialect (or not urpc).
    #[error("protocol mismatch: {0}")]
    Protocol(String),
    /// The socket could not be reached or broke: the sandbox is gone or
    /// going.
    #[error("sandbox is not running (control socket: {0})")]
    Gone(std::io::Error),
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// runsc's state file could not be read or updated.
    #[error("state file: {0}")]
    State(String),
    /// This call needs what only the CLI does (e.g. hooks): use it.
    #[error("left to the runsc CLI: {0}")]
    Unsupported(String),
}

/// A Linux wait status, as the sandbox reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStatus(pub u32);

impl WaitStatus {
    /// Exit code, or 128 + signal (what `runsc wait` prints).
    pub fn code(self) -> i32 {
        let sig = self.0 & 0x7f;
        if sig == 0 {
            ((self.0 >> 8) & 0xff) as i32
        } else {
            128 + sig as i32
        }
    }
}

/// Which processes a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    /// The container's init.
    Init,
    /// One process, by its pid in the sandbox's root PID namespace.
    Pid(i32),
    /// Every process of the container.
    All,
    /// The foreground process group of `pid`'s terminal.
    ForegroundOf(i32),
}

impl SignalTarget {
    fn pid_and_mode(self) -> (i32, i32) {
        match self {
            SignalTarget::Init => (0, 0),
            SignalTarget::Pid(p) => (p, 0),
            SignalTarget::All => (0, 1),
            SignalTarget::ForegroundOf(p) => (p, 2),
        }
    }
}

/// One process of a container (`control.Process`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProcessInfo {
    /// Pid in the sandbox's root PID namespace.
    pub pid: i32,
    /// Parent pid.
    #[serde(default)]
    pub ppid: i32,
    /// Command name.
    #[serde(default)]
    pub cmd: String,
}

#[derive(Deserialize)]
pub(crate) struct EventOut {
    event: EventBody,
    #[serde(default, rename = "containerUsage")]
    pub(crate) container_usage: Option<HashMap<String, u64>>,
}

#[derive(Deserialize)]
struct EventBody {
    #[serde(default)]
    data: Stats,
}

/// A container in a running sandbox, reached over its control socket.
#[derive(Debug, Clone)]
pub struct Sandbox {
    cid: String,
    state: StateFile,
    dialect: Dialect,
    deadline: Duration,
}

impl Sandbox {
    /// Reads container `cid`'s state under `root` and checks that its
    /// socket is the kind `dialect` uses.
    pub async fn open(
        root: &Path,
        cid: &str,
        dialect: Dialect,
        deadline: Duration,
    ) -> Result<Sandbox> {
        let (root, id) = (root.to_path_buf(), cid.to_string());
        let state = tokio::task::spawn_blocking(move || state::load(&root, &id))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            .map_err(|e| control_error("open", cid, ControlFailure::State(e)))?;
        let matches = matches!(
            (&state.address, dialect),
            (Address::Abstract(_), Dialect::R20221219) | (Address::Path(_), Dialect::R20240729)
        );
        if !matches {
            let why = format!(
                "{dialect:?} expected, the state file names socket {}",
                state.address
            );
            return Err(control_error("open", cid, ControlFailure::Protocol(why)));
        }
        Ok(Sandbox {
            cid: cid.to_string(),
            state,
            dialect,
            deadline,
        })
    }

    /// The container this handle is for.
    pub fn id(&self) -> &str {
        &self.cid
    }

    /// The state file's path.
    pub fn state_path(&self) -> &PathBuf {
        &self.state.path
    }

    /// One call on a connection of its own, closed at once: an idle
    /// connection would keep a finished sandbox alive (up to 15 s).
    async fn call<A, R>(
        &self,
        method: &str,
        arg: &A,
        files: &[BorrowedFd<'_>],
        deadline: Option<Duration>,
    ) -> Result<R>
    where
        A: serde::Serialize,
        R: serde::de::DeserializeOwned,
    {
        let fail = |f| control_error(method, &self.cid, f);
        let mut conn =
            Conn::connect(&self.state.address).map_err(|e| fail(ControlFailure::Gone(e)))?;
        let call = conn.call(method, arg, files);
        let res = match deadline {
            Some(d) => tokio::time::timeout(d, call)
                .await
                .map_err(|_| fail(ControlFailure::Timeout(d)))?,
            None => call.await,
        };
        res.map_err(|e| fail(classify(e)))
    }

    /// Confirms the dialect on the live socket: only 0.0~20240729 knows
    /// `containerManager.ContainerRuntimeState`.
    pub async fn handshake(&self) -> Result<()> {
        let method = "containerManager.ContainerRuntimeState";
        let r: Result<i64> = self.call(method, &self.cid, &[], Some(self.deadline)).await;
        let ok = match (self.dialect, &r) {
            (Dialect::R20240729, Ok(_)) => true,
            (
                Dialect::R20221219,
                Err(Error::Control {
                    failure: ControlFailure::Protocol(m),
                    ..
                }),
            ) => m == "unknown method",
            _ => false,
        };
        match (ok, r) {
            (true, _) => Ok(()),
            (
                false,
                Err(
                    e @ Error::Control {
                        failure: ControlFailure::Gone(_),
                        ..
                    },
                ),
            ) => Err(e),
            (false, r) => {
                let why = format!("{:?} handshake answered {r:?}", self.dialect);
                Err(control_error(
                    "handshake",
                    &self.cid,
                    ControlFailure::Protocol(why),
                ))
            }
        }
    }

    /// Starts a process in the container (`ExecuteAsync`); `files` are its
    /// stdin, stdout, stderr (or one pty replica three times), handed over
    /// to the sandbox's owner as runsc does. Returns its sandbox pid.
    pub async fn exec(&self, args: &ExecArgs, files: &[BorrowedFd<'_>]) -> Result<i32> {
        let (uid, gid) = self.state.owner;
        for f in files {
            // Best effort, like runsc: pipes and ptys may refuse.
            // SAFETY: fchown on a descriptor borrowed for this call.
            unsafe { libc::fchown(f.as_raw_fd(), uid, gid) };
        }
        self.call(
            "containerManager.ExecuteAsync",
            args,
            files,
            Some(self.deadline),
        )
        .await
    }

    /// Connects `stream` (one end of a Unix stream pair) to `port` on
    /// 127.0.0.1 in the sandbox's network stack, where the sandbox copies
    /// between them until either side closes (`containerManager.PortForward`,
    /// runsc 0.0~20240729 only).
    pub async fn port_forward(&self, port: u16, stream: BorrowedFd<'_>) -> Result<()> {
        const METHOD: &str = "containerManager.PortForward";
        if self.dialect == Dialect::R20221219 {
            let why = "runsc 0.0~20221219 has no PortForward".to_string();
            return Err(control_error(
                METHOD,
                &self.cid,
                ControlFailure::Unsupported(why),
            ));
        }
        let arg = serde_json::json!({"ContainerID": self.cid, "Port": port});
        self.call::<_, serde_json::Value>(METHOD, &arg, &[stream], Some(self.deadline))
            .await
            .map(drop)
    }

    /// Waits for an exec'd process. The sandbox forgets it once one wait
    /// returned: call this once per process and keep the answer.
    pub async fn wait_pid(&self, pid: i32) -> Result<WaitStatus> {
        let arg = serde_json::json!({"PID": pid, "CID": self.cid});
        self.call("containerManager.WaitPID", &arg, &[], None)
            .await
            .map(WaitStatus)
    }

    /// Waits for the container's init (repeatable).
    pub async fn wait(&self) -> Result<WaitStatus> {
        self.call("containerManager.Wait", &self.cid, &[], None)
            .await
            .map(WaitStatus)
    }

    /// Delivers `signo` to `target`.
    pub async fn signal(&self, signo: i32, target: SignalTarget) -> Result<()> {
        let (pid, mode) = target.pid_and_mode();
        let arg = serde_json::json!({"CID": self.cid, "Signo": signo, "PID": pid, "Mode": mode});
        self.call::<_, serde_json::Value>("containerManager.Signal", &arg, &[], Some(self.deadline))
            .await
            .map(drop)
    }

    /// The container's processes.
    pub async fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let list: Option<Vec<ProcessInfo>> = self
            .call(
                "containerManager.Processes",
                &self.cid,
                &[],
                Some(self.deadline),
            )
            .await?;
        Ok(list.unwrap_or_default())
    }

    /// What `runsc events --stats` prints: the sandbox's figures with this
    /// container's share of the sandbox cgroup's CPU time as its CPU total.
    pub async fn stats(&self) -> Result<Stats> {
        let method = "containerManager.Event";
        let out: EventOut = match self.dialect {
            Dialect::R20221219 => self.call(method, &(), &[], Some(self.deadline)).await?,
            Dialect::R20240729 => {
                self.call(method, &self.cid, &[], Some(self.deadline))
                    .await?
            }
        };
        let mut stats = out.event.data;
        let usage = out.container_usage.unwrap_or_default();
        if !usage.is_empty() {
            let pid = self.state.sandbox_pid;
            let host = tokio::task::spawn_blocking(move || host_cpu_ns(pid))
                .await
                .ok()
                .flatten();
            stats.cpu.usage.total = cpu_share(&usage, &self.cid, host);
        }
        Ok(stats)
    }

    /// Pauses (or resumes) the whole sandbox and records it in this
    /// container's state file, as `runsc pause`/`resume` do.
    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        let method = self.dialect.pause_method(!paused);
        // runsc checks the recorded status before the call, and so must
        // we: the sentry panics on resuming a kernel that is not paused.
        // A mismatch goes to the CLI (a State failure), which refuses it
        // in runsc's words.
        let (from, to): (&[&str], &str) = if paused {
            (&["running"], "paused")
        } else {
            (&["paused"], "running")
        };
        state::check_status(&self.state.status, from)
            .map_err(|why| control_error(method, &self.cid, ControlFailure::State(why)))?;
        self.call::<_, serde_json::Value>(method, &(), &[], Some(self.deadline))
            .await?;
        let path = self.state.path.clone();
        tokio::task::spawn_blocking(move || state::set_status(&path, from, to))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            .map_err(|e| control_error(method, &self.cid, ControlFailure::State(e)))
    }
}

/// runsc's `populateStats`: the container's sentry-accounted share of the
/// sandbox cgroup's CPU time (its own figure without a cgroup).
pub(crate) fn cpu_share(usage: &HashMap<String, u64>, cid: &str, host: Option<u64>) -> u64 {
    let own = usage.get(cid).copied().unwrap_or(0);
    // In u128: the sandbox's figures are its word, and may sum past u64.
    let all: u128 = usage.values().map(|&v| u128::from(v)).sum();
    match host {
        None | Some(0) => own,
        Some(_) if usage.is_empty() => own,
        Some(cg) if all == 0 => cg / usage.len() as u64,
        // own <= all, so the share is at most cg and fits.
        Some(cg) => (u128::from(own) * u128::from(cg) / all) as u64,
    }
}

/// CPU time of the sandbox process's host cgroup in nanoseconds (v1
/// `cpuacct.usage`, v2 `cpu.stat` usage_usec), as runsc reads it.
fn host_cpu_ns(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, rel) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = rel.trim_start_matches('/');
        if ctrls.is_empty() && line.starts_with("0::") {
            let stat =
                std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(rel).join("cpu.stat"))
                    .ok()?;
            let usec = stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?;
            return usec.trim().parse::<u64>().ok().map(|u| u * 1000);
        }
        if ctrls.split(',').any(|c| c == "cpuacct") {
            for mount in [ctrls, "cpuacct", "cpu,cpuacct"] {
                let file = Path::new("/sys/fs/cgroup")
                    .join(mount)
                    .join(rel)
                    .join("cpuacct.usage");
                if let Ok(v) = std::fs::read_to_string(file) {
                    return v.trim().parse().ok();
                }
            }
        }
    }
    None
}

fn classify(e: CallError) -> ControlFailure {
    match e {
        CallError::Transport(io) => ControlFailure::Gone(io),
        CallError::Garbled(m) => ControlFailure::Protocol(m),
        CallError::Remote(m) => {
            let mismatch = m == "unknown method"
                || m.starts_with("json: cannot unmarshal")
                || m.contains("length of payload files does not match");
            if mismatch {
                ControlFailure::Protocol(m)
            } else {
                ControlFailure::Refused(m)
            }
        }
    }
}

fn control_error(method: &str, id: &str, failure: ControlFailure) -> Error {
    Error::Control {
        method: method.to_string(),
        id: id.to_string(),
        failure,
    }
}

#[cfg(test)]
mod tests;
