//! One init or exec process and its state machine. Every change of a
//! process's state is one of the named transitions below; what the shim
//! does around them (runsc calls, events) is in `service/`, and what
//! happens when a process exits is in `service/exit.rs`.
//!
//! ```text
//! Created --begin_start--> Starting --started--> Running <--pause/resume--> Paused
//!    ^                        |                     |                          |
//!    +------start_failed------+ (or Stopped)        +---------exited-----------+--> Stopped
//! Created | Stopped --delete--> Deleted
//! ```

use std::{
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

use shim_io::ProcessIo;
use tokio::sync::watch;

use crate::error::{Error, Result};

/// Exit statuses the shim reports of its own accord.
pub mod exit_status {
    /// A process whose start failed, or whose exit runsc could not tell.
    pub const FAILED: u32 = 128;
    /// Killed by SIGKILL, as an OOM kill is reported.
    pub const KILLED: u32 = 128 + libc::SIGKILL as u32;
    /// An exit status nobody could read.
    pub const UNKNOWN: u32 = 255;

    /// The status of a process killed by `signo`.
    pub fn signalled(signo: i32) -> u32 {
        FAILED.saturating_add(u32::try_from(signo).unwrap_or(0))
    }

    /// A status as a monitor or runsc gives it (negative: unreadable).
    pub fn from_code(code: i32) -> u32 {
        u32::try_from(code).unwrap_or(UNKNOWN)
    }
}

/// Lifecycle of an init or exec process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not started.
    Created,
    /// Its start is under way.
    Starting,
    /// Running.
    Running,
    /// Frozen by Pause.
    Paused,
    /// Exited (exit recorded).
    Stopped,
    /// Deleted; kept only until the last reference goes.
    Deleted,
}

impl Status {
    /// Whether the process is (or is becoming) alive: it can be signalled,
    /// exec'd into and stat'ed, and not deleted.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Starting | Status::Running | Status::Paused)
    }
}

/// Which process of its container this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessKind {
    /// The container's own process.
    Init,
    /// An exec, by its exec id.
    Exec(String),
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

/// What a failed start leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailedStart {
    /// Created again: the sandbox may live on, and Delete (or Kill) of a
    /// created container force-deletes it.
    Created,
    /// Exited with [`exit_status::FAILED`], its stdio closed (the client
    /// reads it to EOF and waits for the exit before it returns the error).
    Exited,
}

#[derive(Debug)]
struct ProcState {
    status: Status,
    pid: u32,
    internal_pid: Option<i32>,
    window: WindowChanges,
    oom_baseline: Option<u64>,
}

/// An init or exec process.
pub struct Process {
    container_id: String,
    kind: ProcessKind,
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
}

impl Process {
    /// A new process in state Created.
    pub fn new(
        container_id: &str,
        kind: ProcessKind,
        stdio: StdioPaths,
        io: ProcessIo,
        spec: Option<oci_spec::runtime::Process>,
    ) -> Self {
        Process {
            container_id: container_id.to_string(),
            kind,
            stdio,
            io,
            spec,
            state: Mutex::new(ProcState {
                status: Status::Created,
                pid: 0,
                internal_pid: None,
                window: WindowChanges::Kernel,
                oom_baseline: None,
            }),
            exit: watch::channel(None).0,
            events: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which process of its container this is.
    pub fn kind(&self) -> &ProcessKind {
        &self.kind
    }

    /// Whether this is the container's own process.
    pub fn is_init(&self) -> bool {
        self.kind == ProcessKind::Init
    }

    /// The exec id containerd knows it by ("" for the init).
    pub fn exec_id(&self) -> &str {
        match &self.kind {
            ProcessKind::Init => "",
            ProcessKind::Exec(id) => id,
        }
    }

    /// The id a user knows the process by, for messages.
    pub fn name(&self) -> String {
        match &self.kind {
            ProcessKind::Init => format!("container {}", self.container_id),
            ProcessKind::Exec(id) => format!("exec {}/{id}", self.container_id),
        }
    }

    /// Takes this process's event turn (see the `events` field).
    pub async fn event_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.events.lock().await
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.lock().status
    }

    fn step(&self, from: &[Status], to: Status) -> Result<()> {
        let mut st = self.lock();
        if from.contains(&st.status) {
            st.status = to;
            return Ok(());
        }
        Err(Error::FailedPrecondition(format!(
            "{}: cannot move from {:?} to {to:?}",
            self.name(),
            st.status
        )))
    }

    /// Created -> Starting, recording the sandbox's OOM kill count now
    /// (`oom_kills`): only kills after it can be this process's.
    pub fn begin_start(&self, oom_kills: Option<u64>) -> Result<()> {
        self.step(&[Status::Created], Status::Starting)?;
        self.lock().oom_baseline = oom_kills;
        Ok(())
    }

    /// Starting -> Running with host pid `pid` (0: keep the one known).
    /// An exit seen meanwhile stands.
    pub fn started(&self, pid: u32) {
        let mut st = self.lock();
        if pid != 0 {
            st.pid = pid;
        }
        if st.status == Status::Starting {
            st.status = Status::Running;
        }
    }

    /// Starting -> Created, or -> Stopped with [`exit_status::FAILED`].
    pub async fn start_failed(&self, then: AfterFailedStart) {
        match then {
            AfterFailedStart::Created => {
                let _ = self.step(&[Status::Starting], Status::Created);
            }
            AfterFailedStart::Exited => {
                self.io.close().await;
                self.exited(exit_status::FAILED);
            }
        }
    }

    /// Running -> Paused.
    pub fn pause(&self) -> Result<()> {
        self.step(&[Status::Running], Status::Paused)
    }

    /// Paused -> Running.
    pub fn resume(&self) -> Result<()> {
        self.step(&[Status::Paused], Status::Running)
    }

    /// Records the exit once (-> Stopped unless deleted) and wakes every
    /// Wait. False if an exit was already recorded.
    pub fn exited(&self, status: u32) -> bool {
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

    /// Created | Stopped -> Deleted; returns the status it had.
    pub fn delete(&self) -> Result<Status> {
        let mut st = self.lock();
        match st.status {
            s @ (Status::Created | Status::Stopped) => {
                st.status = Status::Deleted;
                Ok(s)
            }
            Status::Deleted => Err(Error::NotFound(format!("{} already deleted", self.name()))),
            Status::Starting | Status::Running | Status::Paused => Err(Error::FailedPrecondition(
                format!("cannot delete running {}", self.name()),
            )),
        }
    }

    /// Host pid (sandbox pid for init and direct execs, `runsc exec` pid
    /// for the others); 0 before it is known.
    pub fn pid(&self) -> u32 {
        self.lock().pid
    }

    /// Records the host pid known before start (the init's sandbox).
    pub fn set_pid(&self, pid: u32) {
        self.lock().pid = pid;
    }

    /// Pid inside the sandbox (execs).
    pub fn internal_pid(&self) -> Option<i32> {
        self.lock().internal_pid
    }

    /// Records the pid inside the sandbox and who signals window changes.
    pub fn set_in_sandbox(&self, pid: Option<i32>, window: WindowChanges) {
        let mut st = self.lock();
        st.internal_pid = pid;
        st.window = window;
    }

    /// Who signals window changes.
    pub fn window_changes(&self) -> WindowChanges {
        self.lock().window
    }

    /// The sandbox's OOM kill count when the start began, if known.
    pub fn oom_baseline(&self) -> Option<u64> {
        self.lock().oom_baseline
    }

    /// The recorded exit, if any.
    pub fn exit(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Waits until the exit is recorded (which happens after its output drained).
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                // The sender lives in self, so this cannot happen while we borrow it.
                return ExitInfo {
                    status: exit_status::UNKNOWN,
                    at: SystemTime::now(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn process() -> Process {
        let cfg = shim_io::IoConfig {
            stdin: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            terminal: false,
            uid: 0,
            gid: 0,
            container_id: "c1".into(),
            namespace: "test".into(),
            monitor: std::sync::Arc::new(runsc::DefaultMonitor),
        };
        let io = ProcessIo::open(cfg, shim_io::RelayMode::Direct)
            .await
            .unwrap();
        Process::new("c1", ProcessKind::Init, StdioPaths::default(), io, None)
    }

    #[tokio::test]
    async fn a_process_goes_through_its_lifecycle() {
        assert_eq!(process().await.delete().unwrap(), Status::Created);
        let p = process().await;
        p.begin_start(Some(3)).unwrap();
        assert_eq!(p.status(), Status::Starting);
        assert_eq!(p.oom_baseline(), Some(3));
        assert!(p.begin_start(None).is_err(), "one start at a time");
        assert!(p.delete().is_err(), "a starting process is not deleted");
        p.started(42);
        assert_eq!((p.status(), p.pid()), (Status::Running, 42));
        p.pause().unwrap();
        assert!(p.pause().is_err());
        p.resume().unwrap();
        assert!(p.exited(137));
        assert!(!p.exited(0), "the first exit stands");
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.wait().await.status, 137);
        assert_eq!(p.delete().unwrap(), Status::Stopped);
        assert!(matches!(p.delete(), Err(Error::NotFound(_))));
    }

    #[tokio::test]
    async fn a_failed_start_goes_back_or_exits() {
        let p = process().await;
        p.begin_start(None).unwrap();
        p.start_failed(AfterFailedStart::Created).await;
        assert_eq!(p.status(), Status::Created);
        p.begin_start(None).unwrap();
        p.start_failed(AfterFailedStart::Exited).await;
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.exit().map(|e| e.status), Some(exit_status::FAILED));
    }

    #[tokio::test]
    async fn an_exit_during_the_start_stands() {
        let p = process().await;
        p.begin_start(None).unwrap();
        p.exited(1);
        p.started(7);
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.pid(), 7);
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status::KILLED, 137);
        assert_eq!(exit_status::signalled(15), 143);
        assert_eq!(exit_status::from_code(-1), exit_status::UNKNOWN);
        assert_eq!(exit_status::from_code(3), 3);
    }
}
