//! `runsc events --interval=N <id>`: a long-lived child whose stdout is one
//! JSON event per line, exposed as an [`EventStream`].

use std::{
    process::Stdio as StdStdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::unix::pipe,
    sync::mpsc,
};

use crate::{
    error::{Error, Result},
    exec::{argv_of, spawn_reader},
    global::Runsc,
    opts::EventsOpts,
    types::Event,
};

/// Events buffered before the reader waits for the consumer.
const CHANNEL_DEPTH: usize = 16;

/// Stream of events from one `runsc events` child. Dropping it kills the
/// child with SIGKILL.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Result<Event>>,
    pid: i32,
    exited: Arc<AtomicBool>,
}

impl EventStream {
    /// Next event; `None` once runsc exited (after a final error if it
    /// failed) or the stream was closed.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        self.rx.recv().await
    }

    /// Host pid of the `runsc events` child.
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // Only signal a child not yet reaped, so a recycled pid is not hit.
        if !self.exited.load(Ordering::SeqCst) && self.pid > 0 {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

impl Runsc {
    /// `runsc events [opts] <id>`: events parsed line by line.
    pub async fn events(&self, id: &str, opts: EventsOpts) -> Result<EventStream> {
        let mut args = opts.args();
        args.push(id.to_string());
        let (mut cmd, _log) = self.command_for("events", &args);
        cmd.stdin(StdStdio::null())
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped());
        let argv = argv_of(&cmd);
        let (mut child, exit_rx) = self.spawn("events", &mut cmd).await?;
        let pid = i32::try_from(child.id()).unwrap_or(-1);
        let stderr = spawn_reader(child.stderr.take());
        let stdout = child
            .stdout
            .take()
            .and_then(|o| pipe::Receiver::from_owned_fd(o.into()).ok());
        let exited = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);

        let monitor = self.monitor.clone();
        let flag = exited.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Some(stdout) = stdout {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let item =
                        serde_json::from_str::<Event>(&line).map_err(|source| Error::Parse {
                            subcommand: "events".into(),
                            id: id.clone(),
                            output: line.clone(),
                            source,
                        });
                    // A closed receiver means the stream was dropped: the
                    // child is being killed, keep draining to EOF.
                    let _ = tx.send(item).await;
                }
            }
            let exit = monitor.wait(&child, exit_rx).await;
            flag.store(true, Ordering::SeqCst);
            let stderr = match stderr {
                Some(h) => String::from_utf8_lossy(&h.await.unwrap_or_default()).into_owned(),
                None => String::new(),
            };
            match exit {
                Ok(exit) if exit.status != 0 && !tx.is_closed() => {
                    let _ = tx
                        .send(Err(Error::Command {
                            subcommand: "events".into(),
                            id,
                            argv,
                            status: exit.status,
                            stderr,
                            log_error: None,
                        }))
                        .await;
                }
                Ok(_) => {}
                Err(e) => log::warn!("runsc events pid {pid}: {e}"),
            }
        });
        Ok(EventStream { rx, pid, exited })
    }
}
