//! What the shim knows about each container and process, so it answers State,
//! Pids, Kill and Wait without asking runsc (every runsc call is a Go binary
//! start). Port of gVisor's `proc/` state machines as one enum.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::SystemTime,
};

use runsc::Runsc;
use shim_io::ProcessIo;
use tokio::sync::watch;

use crate::{
    cgroup::HostCgroup,
    error::{Error, Result},
};

/// Lifecycle of an init or exec process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Frozen by Pause.
    Paused,
    /// Exited (exit recorded).
    Stopped,
    /// Deleted; kept only until the last reference goes.
    Deleted,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code or 128 + signal.
    pub status: u32,
    /// When it was recorded.
    pub at: SystemTime,
}

/// The stdio paths containerd gave for a process.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    /// stdin FIFO path or URI.
    pub stdin: String,
    /// stdout FIFO path or URI.
    pub stdout: String,
    /// stderr FIFO path or URI.
    pub stderr: String,
    /// Whether a pty is requested.
    pub terminal: bool,
}

#[derive(Debug)]
struct ProcState {
    status: Status,
    pid: u32,
    internal_pid: Option<i32>,
    window: WindowChanges,
}

/// Who tells a terminal process its window changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowChanges {
    /// The host kernel signals the pty's session leader (runsc's own exec
    /// process, which forwards it) or there is no terminal.
    Kernel,
    /// Nobody on the host: the shim signals the foreground group of this
    /// sandbox pid after each resize (an exec started over the socket).
    Shim(i32),
}

/// An init or exec process.
pub struct Process {
    /// The container it belongs to.
    pub container_id: String,
    /// Exec id; empty for the init process.
    pub exec_id: String,
    /// Stdio as requested.
    pub stdio: StdioPaths,
    /// Stdio as set up.
    pub io: ProcessIo,
    /// The OCI process of an exec (None for init).
    pub spec: Option<oci_spec::runtime::Process>,
    state: Mutex<ProcState>,
    exit: watch::Sender<Option<ExitInfo>>,
    /// Held while a lifecycle step publishes its event, so this process's
    /// events go out in order: a start publishes before the exit that
    /// follows it, an exit before the delete.
    events: tokio::sync::Mutex<()>,
    /// The sandbox cgroup's OOM kill count when the process started.
    oom_baseline: AtomicU64,
}

impl Process {
    /// A new process in state Created.
    pub fn new(
        container_id: &str,
        exec_id: &str,
        stdio: StdioPaths,
        io: ProcessIo,
        spec: Option<oci_spec::runtime::Process>,
    ) -> Self {
        Process {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            stdio,
            io,
            spec,
            state: Mutex::new(ProcState {
                status: Status::Created,
                pid: 0,
                internal_pid: None,
                window: WindowChanges::Kernel,
            }),
            exit: watch::channel(None).0,
            events: tokio::sync::Mutex::new(()),
            oom_baseline: AtomicU64::new(u64::MAX),
        }
    }

    /// Takes this process's event turn (see the `events` field).
    pub async fn event_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.events.lock().await
    }

    /// Records the OOM kill count at start.
    pub fn set_oom_baseline(&self, count: u64) {
        self.oom_baseline.store(count, Ordering::SeqCst);
    }

    /// The OOM kill count at start (`u64::MAX` if never recorded).
    pub fn oom_baseline(&self) -> u64 {
        self.oom_baseline.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// Moves to `to` if the current status is one of `from`; otherwise says why not.
    pub fn transition(&self, from: &[Status], to: Status) -> Result<()> {
        let mut st = self.lock();
        if from.contains(&st.status) {
            st.status = to;
            return Ok(());
        }
        Err(Error::FailedPrecondition(format!(
            "{} {}: cannot move from {:?} to {:?}",
            self.kind(),
            self.name(),
            st.status,
            to
        )))
    }

    /// Host pid (sandbox pid for init, `runsc exec` pid for execs); 0 before start.
    pub fn pid(&self) -> u32 {
        self.lock().pid
    }

    /// Records the host pid.
    pub fn set_pid(&self, pid: u32) {
        self.lock().pid = pid;
    }

    /// Pid inside the sandbox (execs).
    pub fn internal_pid(&self) -> Option<i32> {
        self.lock().internal_pid
    }

    /// Records the pid inside the sandbox.
    pub fn set_internal_pid(&self, pid: Option<i32>) {
        self.lock().internal_pid = pid;
    }

    /// Who signals window changes.
    pub fn window_changes(&self) -> WindowChanges {
        self.lock().window
    }

    /// Records who signals window changes.
    pub fn set_window_changes(&self, w: WindowChanges) {
        self.lock().window = w;
    }

    /// The recorded exit, if any.
    pub fn exit(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Ends a process whose start failed: its stdio closes (the client
    /// reads it to EOF before it returns the error) and it exits with 128.
    pub async fn fail_start(&self) {
        self.io.close().await;
        self.set_exited(128);
    }

    /// Records the exit once and wakes every Wait. Returns false if an exit
    /// was already recorded.
    pub fn set_exited(&self, status: u32) -> bool {
        {
            let mut st = self.lock();
            if self.exit.borrow().is_some() {
                return false;
            }
            if st.status != Status::Deleted {
                st.status = Status::Stopped;
            }
        }
        self.exit.send_replace(Some(ExitInfo {
            status,
            at: SystemTime::now(),
        }));
        true
    }

    /// Waits until the exit is recorded (which happens after its output drained).
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                // Sender lives in self, so this cannot happen while we borrow it.
                return ExitInfo {
                    status: 255,
                    at: SystemTime::now(),
                };
            }
        }
    }

    /// "container" or "exec", for messages.
    pub fn kind(&self) -> &'static str {
        if self.exec_id.is_empty() {
            "container"
        } else {
            "exec"
        }
    }

    /// The id a user knows the process by.
    pub fn name(&self) -> String {
        if self.exec_id.is_empty() {
            self.container_id.clone()
        } else {
            format!("{}/{}", self.container_id, self.exec_id)
        }
    }
}

/// A container served by this shim.
pub struct Container {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// runsc client with this container's flags.
    pub runsc: Runsc,
    /// The pod's sandbox id (the container's own id for a root container).
    pub sandbox_id: String,
    /// True for a pod's non-sandbox container.
    pub sub: bool,
    /// runsc's `--root` for this container's sandbox.
    pub runsc_root: String,
    /// How the runsc call that sets up the sandbox's network sees
    /// `/proc/sys/net`.
    pub netns_check: runsc::NetnsCheck,
    /// The init process.
    pub init: Arc<Process>,
    /// Exec processes by exec id.
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Whether the shim mounted `<bundle>/rootfs`.
    pub rootfs_mounted: bool,
    /// Checkpoint image to restore from at Start.
    pub restore_from: Option<String>,
    /// The sandbox's host cgroup, found once its pid is known.
    pub cgroup: std::sync::OnceLock<HostCgroup>,
    /// The spec's `cgroupsPath`: removed after runsc's delete if runsc
    /// left it.
    pub cgroups_path: Option<std::path::PathBuf>,
    /// The options it was created with.
    pub options: crate::options::Options,
    /// While a checkpoint restores the container in place, the old
    /// sandbox's exit is kept here instead of being reported:
    /// None = not parking, Some(None) = parking, Some(Some(s)) = parked.
    pub parked_exit: Mutex<Option<Option<i32>>>,
}

impl Container {
    /// Locks the exec table.
    pub fn execs(&self) -> MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The init process (empty exec id) or the named exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs().get(exec_id).cloned().ok_or_else(|| {
            Error::NotFound(format!("exec {exec_id} not found in container {}", self.id))
        })
    }

    fn parking(&self) -> MutexGuard<'_, Option<Option<i32>>> {
        self.parked_exit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts keeping the init's next exit instead of reporting it.
    pub fn park_exit(&self) {
        *self.parking() = Some(None);
    }

    /// Parks `status` if parking; false means report it as usual.
    pub fn try_park(&self, status: i32) -> bool {
        match self.parking().as_mut() {
            Some(slot) => {
                *slot = Some(status);
                true
            }
            None => false,
        }
    }

    /// Whether an exit is parked.
    pub fn exit_parked(&self) -> bool {
        matches!(*self.parking(), Some(Some(_)))
    }

    /// Stops parking; returns the parked exit, if any.
    pub fn unpark_exit(&self) -> Option<i32> {
        self.parking().take().flatten()
    }

    /// Finds the host cgroup of the sandbox pid (once).
    pub fn set_cgroup_from_pid(&self, pid: u32) {
        if pid == 0 || self.cgroup.get().is_some() {
            return;
        }
        match HostCgroup::for_pid(pid) {
            Ok(cg) => {
                let _ = self.cgroup.set(cg);
            }
            Err(e) => log::warn!("host cgroup of id={} pid={pid}: {e}", self.id),
        }
    }

    /// The sandbox cgroup's OOM kill count now (0 without a cgroup).
    pub fn oom_kills(&self) -> u64 {
        self.cgroup.get().map(|cg| cg.oom_kills()).unwrap_or(0)
    }
}

/// OOM kills already reported per sandbox: the cgroup is the sandbox's, so
/// one kill is reported for one exit only, and only for a process that
/// started before it.
#[derive(Debug, Default)]
pub struct OomLedger {
    reported: Mutex<HashMap<String, u64>>,
}

impl OomLedger {
    /// Whether an exit with `status` of a process that started at OOM count
    /// `baseline` was an OOM kill, given the count `now`; marks it reported.
    /// When the kill took the sandbox itself (`sandbox_gone`), every
    /// container died of it, and each exit that follows it is an OOM kill.
    pub fn take(
        &self,
        sandbox: &str,
        baseline: u64,
        now: u64,
        status: u32,
        sandbox_gone: bool,
    ) -> bool {
        if status == 0 || baseline == u64::MAX || now <= baseline {
            return false;
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let seen = reported.entry(sandbox.to_string()).or_insert(0);
        if now <= *seen && !sandbox_gone {
            return false;
        }
        *seen = now;
        true
    }

    /// Forgets a sandbox that is gone.
    pub fn forget(&self, sandbox: &str) {
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_is_reported_once_and_only_after_start() {
        let l = OomLedger::default();
        // An OOM before this process started is not its own.
        assert!(!l.take("pod", 2, 2, 137, false));
        // A clean exit is never an OOM kill.
        assert!(!l.take("pod", 2, 3, 0, false));
        assert!(l.take("pod", 2, 3, 137, false));
        // The same kill is not reported for a second exit...
        assert!(!l.take("pod", 1, 3, 137, false));
        // ...unless it took the whole sandbox, and every container with it.
        assert!(l.take("pod", 1, 3, 137, true));
        assert!(!l.take("pod", 3, 3, 137, true), "started after the kill");
        assert!(l.take("pod", 1, 4, 137, false));
        assert!(!l.take("pod", u64::MAX, 9, 137, false));
        l.forget("pod");
        assert!(l.take("pod", 1, 4, 137, false));
    }
}
