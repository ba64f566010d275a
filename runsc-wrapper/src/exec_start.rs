//! Starting a process in a running container the cheapest way this runsc
//! allows ([`Runsc::start_exec`]):
//!
//! - over the sandbox's control socket (`ExecuteAsync` with the process's
//!   stdio): no host process is left per exec, and its exit comes from one
//!   `WaitPID`. With a terminal the pty is made here, its replica is the
//!   process's stdio, and its master goes to the console socket as runsc
//!   would send it;
//! - else `runsc exec`: attached without a terminal (the child is the
//!   caller's and exits with the process, saving the second runsc start
//!   that `--detach` costs), detached with one (runsc 0.0~20221219 sets up
//!   a console only for `--detach`).

use std::{
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use oci_spec::runtime::Process;
use tokio::task::JoinHandle;

use crate::{
    control::{process::ExecArgs, Sandbox},
    error::{Error, Result},
    global::Runsc,
    opts::{ExecOpts, Stdio, StdioSource},
    pid_file,
};

/// What [`Runsc::start_exec`] needs besides the process.
#[derive(Debug)]
pub struct ExecStart {
    /// The process's stdio (unused with a terminal).
    pub stdio: Stdio,
    /// With a terminal: the socket its pty master is sent to.
    pub console_socket: Option<PathBuf>,
    /// Where `runsc exec` writes the host pid of the process it runs.
    pub pid_file: PathBuf,
    /// Where `runsc exec` writes the process's pid in the sandbox.
    pub internal_pid_file: PathBuf,
}

/// A started exec and where its exit will come from.
#[derive(Debug)]
pub enum StartedExec {
    /// Started over the control socket: no host process runs it.
    InSandbox {
        /// The sandbox, to wait on.
        sandbox: Sandbox,
        /// Its pid in the sandbox.
        pid: i32,
    },
    /// `runsc exec --detach`: the detached waiter exits with the process.
    /// It is reparented to the caller's subreaper, possibly already gone:
    /// claim its exit as of `since`.
    Detached {
        /// The waiter's host pid.
        pid: u32,
        /// The process's pid in the sandbox, if runsc wrote it.
        internal_pid: Option<i32>,
        /// When the `runsc exec` call began.
        since: Instant,
    },
    /// `runsc exec` attached: the call ends with the process's exit code.
    Attached {
        /// The host pid runsc wrote.
        pid: u32,
        /// The process's pid in the sandbox, if runsc wrote it.
        internal_pid: Option<i32>,
        /// The call, yielding the exit code.
        exit: JoinHandle<Result<i32>>,
    },
}

/// How long `runsc exec` may take to start the process.
const START_DEADLINE: Duration = Duration::from_secs(30);

impl Runsc {
    /// Starts `process` in container `id` (see the module docs).
    pub async fn start_exec(
        &self,
        id: &str,
        process: &Process,
        mut req: ExecStart,
    ) -> Result<StartedExec> {
        pid_file::remove(&req.pid_file).await;
        pid_file::remove(&req.internal_pid_file).await;
        if let Some(sandbox) = self.sandbox(id).await {
            let started = match &req.console_socket {
                Some(socket) => self.exec_with_pty(&sandbox, id, process, socket).await?,
                None => self.exec_direct(&sandbox, id, process, &req.stdio).await?,
            };
            if let Some(pid) = started {
                return Ok(StartedExec::InSandbox { sandbox, pid });
            }
        }
        let detach = req.console_socket.is_some();
        let opts = ExecOpts {
            stdio: std::mem::take(&mut req.stdio),
            pid_file: Some(req.pid_file.clone()),
            internal_pid_file: Some(req.internal_pid_file.clone()),
            console_socket: req.console_socket.clone(),
            detach,
        };
        let since = Instant::now();
        let (r, cid, p) = (self.clone(), id.to_string(), process.clone());
        let mut run = tokio::spawn(async move { r.exec(&cid, &p, opts).await });
        let pid = if detach {
            match (&mut run).await {
                Ok(Ok(_)) => pid_file::read(&req.pid_file).await?,
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(task_failed(id, e)),
            }
        } else {
            wait_for_pid_file(id, &req.pid_file, &mut run).await?
        };
        let internal_pid = pid_file::read(&req.internal_pid_file)
            .await
            .ok()
            .and_then(|p| i32::try_from(p).ok());
        pid_file::remove(&req.pid_file).await;
        pid_file::remove(&req.internal_pid_file).await;
        Ok(if detach {
            StartedExec::Detached {
                pid,
                internal_pid,
                since,
            }
        } else {
            StartedExec::Attached {
                pid,
                internal_pid,
                exit: run,
            }
        })
    }

    /// `ExecuteAsync` with the process's stdio; None: use the CLI.
    async fn exec_direct(
        &self,
        sb: &Sandbox,
        id: &str,
        process: &Process,
        stdio: &Stdio,
    ) -> Result<Option<i32>> {
        let args = self.exec_args(id, process)?;
        let files = [
            file_or_null(&stdio.stdin, false)?,
            file_or_null(&stdio.stdout, true)?,
            file_or_null(&stdio.stderr, true)?,
        ];
        let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
        match sb.exec(&args, &fds).await {
            Ok(pid) => Ok(Some(pid)),
            Err(e) if self.fall_back_on(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ExecuteAsync` on a pty made here, whose master goes to `socket`;
    /// None: use the CLI.
    async fn exec_with_pty(
        &self,
        sb: &Sandbox,
        id: &str,
        process: &Process,
        socket: &Path,
    ) -> Result<Option<i32>> {
        let mut args = self.exec_args(id, process)?;
        args.stdio_is_pty = true;
        // The process reads its size as it starts, before any resize.
        let size = process.console_size().as_ref().map(|s| nix::pty::Winsize {
            ws_row: u16::try_from(s.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(s.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let pty = nix::pty::openpty(size.as_ref(), None).map_err(|e| Error::Io {
            op: "open a pty for an exec in".into(),
            path: PathBuf::from(id),
            source: e.into(),
        })?;
        let replica = pty.slave.as_fd();
        let pid = match sb.exec(&args, &[replica, replica, replica]).await {
            Ok(pid) => pid,
            Err(e) if self.fall_back_on(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        drop(pty.slave);
        send_master(socket, pty.master).map_err(|source| Error::Io {
            op: "hand the pty master to".into(),
            path: socket.to_path_buf(),
            source,
        })?;
        Ok(Some(pid))
    }

    fn exec_args(&self, id: &str, process: &Process) -> Result<ExecArgs> {
        let net_raw = self.config().get("net-raw").is_some_and(|v| v == "true");
        ExecArgs::from_process(id, process, net_raw).map_err(|reason| Error::InvalidProcess {
            id: id.to_string(),
            reason,
        })
    }
}

/// Waits until attached `runsc exec` wrote its pid file (the process
/// runs) or ended first (it failed, or the process was very short).
async fn wait_for_pid_file(
    id: &str,
    path: &Path,
    run: &mut JoinHandle<Result<i32>>,
) -> Result<u32> {
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Ok(pid) = pid_file::read(path).await {
            return Ok(pid);
        }
        if run.is_finished() {
            if let Ok(pid) = pid_file::read(path).await {
                return Ok(pid);
            }
            return match run.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(code)) => Err(Error::Command {
                    subcommand: "exec".into(),
                    id: id.to_string(),
                    argv: Vec::new(),
                    status: code,
                    stderr: String::new(),
                    log_error: Some("it exited before the process started".into()),
                }),
                Err(e) => Err(task_failed(id, e)),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            run.abort();
            return Err(Error::Timeout {
                subcommand: "exec".into(),
                id: id.to_string(),
                after: START_DEADLINE,
                log_error: Some(format!("{} was never written", path.display())),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn task_failed(id: &str, e: tokio::task::JoinError) -> Error {
    Error::Io {
        op: "run the runsc exec task for".into(),
        path: PathBuf::from(id),
        source: std::io::Error::other(e.to_string()),
    }
}

/// What runsc does with `--console-socket`: the master as SCM_RIGHTS.
fn send_master(socket: &Path, master: OwnedFd) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"pty")];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

/// The descriptor for one stream: the process's own, or `/dev/null`.
fn file_or_null(src: &StdioSource, write: bool) -> Result<OwnedFd> {
    let open_null = || {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open("/dev/null")
            .map(OwnedFd::from)
    };
    match src {
        StdioSource::Fd(fd) => fd.try_clone(),
        StdioSource::Null | StdioSource::Inherit => open_null(),
    }
    .map_err(|source| Error::Io {
        op: "prepare exec stdio".into(),
        path: PathBuf::from("/dev/null"),
        source,
    })
}
