//! containerd's logging-binary protocol (`binary:///path?k=v`).
//!
//! The logger is started with `CONTAINER_ID` and `CONTAINER_NAMESPACE` as its
//! only environment, the query pairs as arguments, and three extra files:
//! fd 3 = read end of the stdout pipe, fd 4 = read end of the stderr pipe,
//! fd 5 = write end of a readiness pipe it closes (or writes to) once ready.
//! The runtime gets the write ends; the logger sees EOF when every writer is
//! gone and is expected to exit then.

use std::{
    ffi::OsStr,
    os::{
        fd::{AsRawFd, OwnedFd, RawFd},
        unix::process::CommandExt,
    },
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use nix::{
    fcntl::{fcntl, FcntlArg},
    sys::signal::{kill, Signal},
    unistd::{read, Pid},
};
use process_monitor::{ExitReceiver, ProcessMonitor};
use tokio::time::{timeout, Instant};

use crate::{
    copy::register,
    error::{Error, Result},
    fifo::{chown_fd, fionread, pipe},
};

/// How long `open` waits for the logger to signal readiness.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `close` waits for the logger to exit after its input ended,
/// before SIGTERM (and as long again before SIGKILL).
pub const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A started logging binary.
#[derive(Debug)]
pub struct BinaryLogger {
    path: String,
    pid: u32,
    exit: Option<ExitReceiver>,
    exited: bool,
    /// The shim's read ends (never read; used for `FIONREAD`).
    out_r: OwnedFd,
    err_r: OwnedFd,
}

/// The logger and the write ends for the runtime, `(logger, stdout, stderr)`.
pub type Spawned = (BinaryLogger, OwnedFd, OwnedFd);

/// Starts the logger at `path` and waits (bounded) until it is ready.
pub async fn spawn(
    path: &Path,
    args: &[String],
    container_id: &str,
    namespace: &str,
    monitor: &Arc<dyn ProcessMonitor>,
    uid: u32,
    gid: u32,
) -> Result<Spawned> {
    let shown = path.display().to_string();
    let (out_r, out_w) = pipe(&shown)?;
    let (err_r, err_w) = pipe(&shown)?;
    let (ready_r, ready_w) = pipe(&shown)?;
    chown_fd(&out_w, uid, gid, &shown)?;
    chown_fd(&err_w, uid, gid, &shown)?;
    // Copies above 9 so that dup2 onto 3..=5 in the child cannot clobber a
    // source; they are close-on-exec and vanish in the child after exec.
    let high = |fd: &OwnedFd| -> Result<OwnedFd> {
        let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10))
            .map_err(|e| Error::io("dup logger pipe for", &shown, e))?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor we now own.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
    };
    let extra = [high(&out_r)?, high(&err_r)?, high(&ready_w)?];
    let raws: [RawFd; 3] = [
        extra[0].as_raw_fd(),
        extra[1].as_raw_fd(),
        extra[2].as_raw_fd(),
    ];

    let mut cmd = Command::new(path);
    cmd.args(args.iter().map(OsStr::new))
        .env_clear()
        .env("CONTAINER_ID", container_id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure only calls dup2, which is async-signal-safe, on
    // descriptors that stay open until after spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raws.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (child, exit) = monitor
        .start(&mut cmd)
        .await
        .map_err(|e| Error::io("start logging binary", &shown, e))?;
    drop(cmd);
    drop(extra);
    drop(ready_w);
    let mut logger = BinaryLogger {
        path: shown.clone(),
        pid: child.id(),
        exit: Some(exit),
        exited: false,
        out_r,
        err_r,
    };
    drop(child);

    let ready = register(ready_r).map_err(|e| Error::io("wait for logging binary", &shown, e))?;
    let wait = async {
        loop {
            let mut g = ready.readable().await?;
            let mut b = [0u8; 1];
            match g.try_io(|fd| read(fd.get_ref(), &mut b).map_err(std::io::Error::from)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    };
    match timeout(READY_TIMEOUT, wait).await {
        Ok(Ok(_)) => Ok((logger, out_w, err_w)),
        Ok(Err(e)) => {
            logger.kill_now();
            Err(Error::io("read readiness of logging binary", shown, e))
        }
        Err(_) => {
            logger.kill_now();
            Err(Error::Timeout {
                op: "wait for logging binary to be ready".into(),
                path: shown,
                secs: READY_TIMEOUT.as_secs(),
            })
        }
    }
}

impl BinaryLogger {
    fn poll_exited(&mut self) -> bool {
        if !self.exited {
            if let Some(rx) = self.exit.as_mut() {
                match rx.try_recv() {
                    Ok(_) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                        self.exited = true;
                        self.exit = None;
                    }
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                }
            }
        }
        self.exited
    }

    async fn wait_exit(&mut self, d: Duration) -> bool {
        if self.poll_exited() {
            return true;
        }
        if let Some(rx) = self.exit.as_mut() {
            if timeout(d, rx).await.is_ok() {
                self.exited = true;
                self.exit = None;
            }
        }
        self.exited
    }

    /// Waits until the logger has read everything (both pipes empty) or
    /// exited, or `deadline` passes.
    pub async fn drain(&mut self, deadline: Instant) {
        loop {
            let empty =
                fionread(&self.out_r).unwrap_or(0) == 0 && fionread(&self.err_r).unwrap_or(0) == 0;
            if empty || self.poll_exited() || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for the logger to exit (its input has ended), then SIGTERM,
    /// then SIGKILL, each after [`EXIT_GRACE`].
    pub async fn stop(&mut self) {
        if self.wait_exit(EXIT_GRACE).await {
            return;
        }
        log::warn!(
            "logging binary {} (pid {}) still running: SIGTERM",
            self.path,
            self.pid
        );
        self.signal(Signal::SIGTERM);
        if !self.wait_exit(EXIT_GRACE).await {
            self.kill_now();
        }
    }

    fn signal(&mut self, sig: Signal) {
        if self.poll_exited() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// SIGKILLs the logger unless it is known to have exited.
    pub fn kill_now(&mut self) {
        self.signal(Signal::SIGKILL);
        self.exited = true;
    }
}

impl Drop for BinaryLogger {
    fn drop(&mut self) {
        if !self.exited {
            self.kill_now();
        }
    }
}
