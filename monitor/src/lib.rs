//! The one seam through which runsc (and every other child of a shim) is
//! spawned: a [`ProcessMonitor`] starts a command and later yields its exit.
//!
//! A shim is a child subreaper with a single `waitpid(-1)` loop; a plain
//! `Child::wait` would race that loop and lose the status. Implementations
//! therefore subscribe to the exit *before* the child is spawned and hand back
//! a receiver that cannot miss it.
//!
//! Layout (one file, no other workspace crate below it):
//! - [`ProcessMonitor`]: the trait (`start` spawns and returns the
//!   [`ExitReceiver`]; `wait` awaits it), with the [`Exit`] it reports.
//! - [`DefaultMonitor`]: for processes that are not subreapers; waits for
//!   each child with `waitpid(pid)` on a blocking thread.
//! - [`LogMonitor`]: a decorator that logs argv, exit status and duration.
//! - [`describe`]: a command's `program arg1 arg2 ...` for logs and errors.
//!
//! The `runsc` crate (which spawns runsc through it) and `shim-io` (which
//! spawns logging binaries through it) both depend on this crate; `runsc`
//! re-exports its names, and the shim implements the trait with its reaper.
#![deny(missing_docs)]

use std::{
    fmt, io,
    process::{Child, Command},
    sync::Arc,
    time::{Instant, SystemTime},
};

use async_trait::async_trait;
use tokio::sync::oneshot;

/// How a child ended: its exit code, or 128 + the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Host pid of the child.
    pub pid: u32,
    /// Exit code, or 128 + signal number.
    pub status: i32,
    /// When the exit was observed.
    pub at: SystemTime,
}

/// Receives the [`Exit`] of one spawned child.
pub type ExitReceiver = oneshot::Receiver<Exit>;

/// Starts commands and reports their exits without ever losing one.
#[async_trait]
pub trait ProcessMonitor: Send + Sync + fmt::Debug {
    /// Spawns `cmd`. The returned receiver yields the child's exit; the
    /// implementation must be subscribed to it before the child exists.
    async fn start(&self, cmd: &mut Command) -> io::Result<(Child, ExitReceiver)>;

    /// Waits for the exit announced on `rx`.
    async fn wait(&self, child: &Child, rx: ExitReceiver) -> io::Result<Exit> {
        rx.await
            .map_err(|_| io::Error::other(format!("exit of pid {} was never reported", child.id())))
    }
}

/// Monitor for processes that are not subreapers: waits for each child on a
/// blocking thread with `waitpid(pid)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultMonitor;

#[async_trait]
impl ProcessMonitor for DefaultMonitor {
    async fn start(&self, cmd: &mut Command) -> io::Result<(Child, ExitReceiver)> {
        let child = cmd.spawn()?;
        let pid = child.id();
        let (tx, rx) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let status = wait_pid(pid);
            let _ = tx.send(Exit {
                pid,
                status,
                at: SystemTime::now(),
            });
        });
        Ok((child, rx))
    }
}

/// Blocks until `pid` exits; returns its code or 128 + signal (-1 if the
/// status could not be read, e.g. someone else reaped it).
fn wait_pid(pid: u32) -> i32 {
    use nix::{
        sys::wait::{waitpid, WaitStatus},
        unistd::Pid,
    };
    let Ok(raw) = i32::try_from(pid) else {
        return -1;
    };
    loop {
        match waitpid(Pid::from_raw(raw), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return -1,
        }
    }
}

/// Decorator that logs each command's argv, exit status and duration, then
/// forwards to the next monitor (port of runsccmd's `LogMonitor`).
#[derive(Debug, Clone)]
pub struct LogMonitor {
    next: Arc<dyn ProcessMonitor>,
}

impl LogMonitor {
    /// Wraps `next`.
    pub fn new(next: Arc<dyn ProcessMonitor>) -> Self {
        LogMonitor { next }
    }
}

#[async_trait]
impl ProcessMonitor for LogMonitor {
    async fn start(&self, cmd: &mut Command) -> io::Result<(Child, ExitReceiver)> {
        let argv = describe(cmd);
        let res = self.next.start(cmd).await;
        match &res {
            Ok((child, _)) => log::debug!("exec pid={} argv={argv}", child.id()),
            Err(e) => log::debug!("exec failed argv={argv}: {e}"),
        }
        res
    }

    async fn wait(&self, child: &Child, rx: ExitReceiver) -> io::Result<Exit> {
        let started = Instant::now();
        let res = self.next.wait(child, rx).await;
        if let Ok(exit) = &res {
            log::debug!(
                "exit pid={} status={} after={:?}",
                exit.pid,
                exit.status,
                started.elapsed()
            );
        }
        res
    }
}

/// `program arg1 arg2 ...` for logs and error messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn describe_joins_program_and_args() {
        let mut cmd = Command::new("runsc");
        cmd.args(["--root=/r", "state", "c1"]);
        assert_eq!(describe(&cmd), "runsc --root=/r state c1");
        assert_eq!(describe(&Command::new("true")), "true");
    }

    #[tokio::test]
    async fn default_monitor_reports_code_and_signal() {
        let m = DefaultMonitor;
        let (child, rx) = m
            .start(Command::new("/bin/sh").args(["-c", "exit 7"]))
            .await
            .unwrap();
        let exit = m.wait(&child, rx).await.unwrap();
        assert_eq!((exit.pid, exit.status), (child.id(), 7));

        let (child, rx) = m
            .start(Command::new("/bin/sh").args(["-c", "kill -9 $$"]))
            .await
            .unwrap();
        assert_eq!(m.wait(&child, rx).await.unwrap().status, 128 + 9);
    }

    #[tokio::test]
    async fn log_monitor_forwards() {
        let m = LogMonitor::new(Arc::new(DefaultMonitor));
        let (child, rx) = m
            .start(Command::new("/bin/sh").args(["-c", "exit 3"]))
            .await
            .unwrap();
        assert_eq!(m.wait(&child, rx).await.unwrap().status, 3);
        assert!(m
            .start(&mut Command::new("/nonexistent/binary"))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn an_unreported_exit_is_an_error() {
        let (child, _) = DefaultMonitor
            .start(&mut Command::new("true"))
            .await
            .unwrap();
        let (tx, rx) = oneshot::channel();
        drop(tx);
        let err = DefaultMonitor.wait(&child, rx).await.unwrap_err();
        assert!(err.to_string().contains("never reported"), "{err}");
    }
}
