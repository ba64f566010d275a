//! Running one runsc child: spawn through the monitor, feed/capture pipes
//! concurrently with waiting for the exit, and pick up what runsc appended
//! to its `--log` during the call.

use std::{
    os::fd::OwnedFd,
    path::Path,
    process::{Command, Stdio as StdStdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt},
    net::unix::pipe,
    task::JoinHandle,
};

use process_monitor::describe;

use crate::{
    deadline::kill_tree,
    error::{last_log_error, Error, Result},
    global::{CallLog, Runsc},
    opts::Stdio,
};

/// How long to keep reading capture pipes after runsc exited; a stray
/// grandchild holding them open must not hang the call.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What the child's stdio is.
#[derive(Debug)]
pub(crate) enum CallIo {
    /// Capture stdout and stderr; optionally write `stdin` then close it.
    Capture(Option<Vec<u8>>),
    /// The container's stdio: handed over as is, never captured.
    Container(Stdio),
}

/// Result of a call, successful or not.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub subcommand: String,
    pub id: String,
    pub argv: Vec<String>,
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub log_error: Option<String>,
}

impl Outcome {
    /// The [`Error::Command`] describing this outcome.
    pub(crate) fn into_error(self) -> Error {
        Error::Command {
            subcommand: self.subcommand,
            id: self.id,
            argv: self.argv,
            status: self.status,
            stderr: self.stderr,
            log_error: self.log_error,
        }
    }

    /// `Ok(self)` on exit status 0, the command error otherwise.
    pub(crate) fn check(self) -> Result<Outcome> {
        if self.status == 0 {
            Ok(self)
        } else {
            Err(self.into_error())
        }
    }

    /// Stdout as (lossy) text.
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Parses stdout as JSON, mapping failures to [`Error::Parse`].
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.stdout).map_err(|source| self.parse_error(source))
    }

    pub(crate) fn parse_error(&self, source: serde_json::Error) -> Error {
        Error::Parse {
            subcommand: self.subcommand.clone(),
            id: self.id.clone(),
            output: self.stdout_text(),
            source,
        }
    }
}

pub(crate) fn argv_of(cmd: &Command) -> Vec<String> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

/// Current length of runsc's log, so only this call's lines are read later.
pub(crate) async fn log_len(log: Option<&Path>) -> u64 {
    match log {
        Some(p) => tokio::fs::metadata(p).await.map(|m| m.len()).unwrap_or(0),
        None => 0,
    }
}

/// Last error runsc appended to `log` after `offset`. A log we cannot read
/// only costs us the message, so failures yield `None`.
pub(crate) async fn log_error_since(log: Option<&Path>, offset: u64) -> Option<String> {
    let mut f = tokio::fs::File::open(log?).await.ok()?;
    f.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).await.ok()?;
    last_log_error(&buf)
}

/// The last error a call logged; a log of its own is removed once read.
async fn read_call_log(log: &CallLog, offset: u64) -> Option<String> {
    match log {
        CallLog::None => None,
        CallLog::Shared(p) => log_error_since(Some(p), offset).await,
        CallLog::Own(p) => {
            let found = log_error_since(Some(p), 0).await;
            let _ = tokio::fs::remove_file(p).await;
            found
        }
    }
}

/// Reads a pipe to EOF on a task.
pub(crate) fn spawn_reader(fd: Option<impl Into<OwnedFd>>) -> Option<JoinHandle<Vec<u8>>> {
    let rx = pipe::Receiver::from_owned_fd(fd?.into())
        .map_err(|e| log::warn!("cannot watch runsc output pipe: {e}"))
        .ok()?;
    Some(tokio::spawn(async move {
        let mut rx = rx;
        let mut buf = Vec::new();
        if let Err(e) = rx.read_to_end(&mut buf).await {
            log::debug!("reading runsc output: {e}");
        }
        buf
    }))
}

async fn collect(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    let Some(mut handle) = handle else {
        return Vec::new();
    };
    match tokio::time::timeout(DRAIN_GRACE, &mut handle).await {
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => {
            log::warn!("runsc output reader failed: {e}");
            Vec::new()
        }
        Err(_) => {
            log::warn!("runsc output still open {DRAIN_GRACE:?} after exit; giving up");
            handle.abort();
            Vec::new()
        }
    }
}

/// Kills a runsc child's process tree unless disarmed: a call whose caller
/// stopped waiting (its future was dropped) must not leave runsc, a gofer
/// or a sandbox behind.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            log::warn!("runsc pid={pid} abandoned by its caller: killing its process tree");
            kill_tree(pid);
        }
    }
}

/// How long a killed runsc may take to be reaped before we stop waiting.
const KILL_GRACE: Duration = Duration::from_secs(10);

impl Runsc {
    /// Spawns `cmd` through the monitor (subscribed to its exit first).
    pub(crate) async fn spawn(
        &self,
        subcommand: &str,
        cmd: &mut Command,
    ) -> Result<(std::process::Child, crate::ExitReceiver)> {
        self.monitor
            .start(cmd)
            .await
            .map_err(|source| Error::Spawn {
                subcommand: subcommand.to_string(),
                command: describe(cmd),
                source,
            })
    }

    /// Runs `cmd` to completion, or until `deadline` (then its process tree
    /// is killed and [`Error::Timeout`] says what runsc had logged). A
    /// non-zero exit is reported in the [`Outcome`], not as an error.
    pub(crate) async fn execute(
        &self,
        subcommand: &str,
        id: &str,
        (mut cmd, log): (Command, CallLog),
        io: CallIo,
        deadline: Option<Duration>,
    ) -> Result<Outcome> {
        let offset = match &log {
            CallLog::Shared(p) => log_len(Some(p)).await,
            CallLog::Own(_) | CallLog::None => 0,
        };
        let stdin_data = match io {
            CallIo::Capture(stdin) => {
                cmd.stdout(StdStdio::piped()).stderr(StdStdio::piped());
                cmd.stdin(if stdin.is_some() {
                    StdStdio::piped()
                } else {
                    StdStdio::null()
                });
                stdin
            }
            CallIo::Container(stdio) => {
                stdio.apply(&mut cmd);
                None
            }
        };
        let argv = argv_of(&cmd);
        let (mut child, exit_rx) = self.spawn(subcommand, &mut cmd).await?;
        let mut guard = KillOnDrop(Some(child.id()));
        // Drop the Command now: it owns the parent's copies of any container
        // fds, which must not stay open in this process.
        drop(cmd);

        let out = spawn_reader(child.stdout.take());
        let err = spawn_reader(child.stderr.take());
        let writer = match (child.stdin.take(), stdin_data) {
            (Some(stdin), Some(data)) => match pipe::Sender::from_owned_fd(stdin.into()) {
                Ok(mut tx) => Some(tokio::spawn(async move {
                    // runsc may exit without reading; EPIPE is its problem.
                    if let Err(e) = tx.write_all(&data).await {
                        log::debug!("writing runsc stdin: {e}");
                    }
                })),
                Err(e) => {
                    log::warn!("cannot feed runsc stdin: {e}");
                    None
                }
            },
            _ => None,
        };

        let waited = self.monitor.wait(&child, exit_rx);
        let finished = match deadline {
            Some(d) => tokio::time::timeout(d, waited).await.ok(),
            None => Some(waited.await),
        };
        let Some(exit) = finished else {
            // Overran: end the whole tree, and let the reaper collect it.
            guard.0 = None;
            kill_tree(child.id());
            if let Some(w) = writer {
                w.abort();
            }
            let (_, _) = tokio::join!(
                tokio::time::timeout(KILL_GRACE, collect(out)),
                tokio::time::timeout(KILL_GRACE, collect(err))
            );
            let log_error = read_call_log(&log, offset).await;
            return Err(Error::Timeout {
                subcommand: subcommand.to_string(),
                id: id.to_string(),
                after: deadline.unwrap_or_default(),
                log_error,
            });
        };
        guard.0 = None;
        let exit = exit.map_err(|source| Error::Io {
            op: format!("wait for runsc {subcommand}"),
            path: self.command.clone(),
            source,
        })?;
        if let Some(w) = writer {
            w.abort();
        }
        let stdout = collect(out).await;
        let stderr = String::from_utf8_lossy(&collect(err).await).into_owned();
        let log_error = read_call_log(&log, offset).await;
        Ok(Outcome {
            subcommand: subcommand.to_string(),
            id: id.to_string(),
            argv,
            status: exit.status,
            stdout,
            stderr,
            log_error,
        })
    }

    /// `runsc <globals> <subcommand> <args>` with captured output; errors on
    /// a non-zero exit.
    pub(crate) async fn capture(
        &self,
        subcommand: &str,
        id: &str,
        args: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<Outcome> {
        let call = self.command_for(subcommand, args);
        let deadline = self.timeouts.get(subcommand);
        self.execute(subcommand, id, call, CallIo::Capture(stdin), deadline)
            .await?
            .check()
    }
}
