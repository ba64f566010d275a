//! [`Fifos`] and [`Output`]: a process's stdio FIFOs, made as the client
//! makes them, and a background reader of one of them.

use std::path::{Path, PathBuf};

use tokio::{io::AsyncReadExt, sync::watch, task::JoinHandle};

use super::DEADLINE;

/// The stdio FIFOs of one process, made by the client in a directory of its
/// own (as Docker's `cio.NewFIFOSetInDir`). Paths are what the task
/// requests carry; an absent stream is an empty path (`/dev/null`).
pub struct Fifos {
    dir: tempfile::TempDir,
    /// stdin FIFO, when the process gets input.
    pub stdin: Option<PathBuf>,
    /// stdout FIFO (the terminal's output with `terminal`).
    pub stdout: PathBuf,
    /// stderr FIFO; never with a terminal (the pty merges both).
    pub stderr: Option<PathBuf>,
    /// Whether the process gets a pty.
    pub terminal: bool,
}

impl Fifos {
    /// stdout and stderr FIFOs, no stdin, no terminal.
    pub fn new() -> Fifos {
        Fifos::make(false, true, false)
    }

    /// stdin and stdout FIFOs with a terminal (`docker run -it`).
    pub fn tty() -> Fifos {
        Fifos::make(true, false, true)
    }

    /// stdin, stdout and stderr FIFOs, no terminal (`docker run -i`).
    pub fn with_stdin() -> Fifos {
        Fifos::make(true, true, false)
    }

    fn make(stdin: bool, stderr: bool, terminal: bool) -> Fifos {
        let dir = tempfile::Builder::new()
            .prefix("client-fifos-")
            .tempdir()
            .unwrap();
        let fifo = |name: &str| {
            let p = dir.path().join(name);
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o700)).unwrap();
            p
        };
        Fifos {
            stdin: stdin.then(|| fifo("stdin")),
            stdout: fifo("stdout"),
            stderr: stderr.then(|| fifo("stderr")),
            terminal,
            dir,
        }
    }

    /// The directory holding the FIFOs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn path(p: &Option<PathBuf>) -> String {
        p.as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Starts reading stdout (call before the task or exec is created, as
    /// Docker does; the reader waits for the shim to open the FIFO).
    pub fn stdout(&self) -> Output {
        Output::open(&self.stdout)
    }

    /// Starts reading stderr.
    pub fn stderr(&self) -> Output {
        Output::open(self.stderr.as_ref().expect("no stderr fifo"))
    }

    /// Opens stdin for writing. The shim must have opened its end (after
    /// Create or Exec): a FIFO without a reader cannot be opened here.
    pub fn stdin(&self) -> tokio::net::unix::pipe::Sender {
        let p = self.stdin.as_ref().expect("no stdin fifo");
        tokio::net::unix::pipe::OpenOptions::new()
            .open_sender(p)
            .unwrap_or_else(|e| panic!("open {} for writing: {e}", p.display()))
    }
}

/// A background reader of one output FIFO: every byte it read, and whether
/// it saw EOF (the shim closes its ends once the process's output is drained).
pub struct Output {
    path: PathBuf,
    seen: watch::Receiver<(Vec<u8>, bool)>,
    task: JoinHandle<()>,
}

impl Output {
    /// Opens `path` for reading (never blocks: a FIFO no writer has opened
    /// yet simply has nothing to read) and reads it in the background.
    pub fn open(path: &Path) -> Output {
        let mut rx = tokio::net::unix::pipe::OpenOptions::new()
            .open_receiver(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let (tx, seen) = watch::channel((Vec::new(), false));
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        tx.send_modify(|(_, eof)| *eof = true);
                        return;
                    }
                    Ok(n) => tx.send_modify(|(data, _)| data.extend_from_slice(&buf[..n])),
                }
            }
        });
        Output {
            path: path.to_path_buf(),
            seen,
            task,
        }
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.borrow().0).into_owned()
    }

    /// Waits until the text read contains `needle`; returns all of it.
    pub async fn wait_for(&self, needle: &str) -> String {
        self.wait_until(|t, _| t.contains(needle), &format!("{needle:?}"))
            .await
    }

    /// Waits until `f(text, eof)` holds; returns the text.
    pub async fn wait_until(&self, f: impl Fn(&str, bool) -> bool, what: &str) -> String {
        let mut seen = self.seen.clone();
        let got = tokio::time::timeout(
            DEADLINE,
            seen.wait_for(|(data, eof)| f(&String::from_utf8_lossy(data), *eof)),
        )
        .await;
        match got {
            Ok(Ok(v)) => String::from_utf8_lossy(&v.0).into_owned(),
            _ => panic!(
                "{}: {what} never seen; read so far: {:?}",
                self.path.display(),
                self.text()
            ),
        }
    }

    /// Waits for EOF; returns everything read.
    pub async fn wait_eof(&self) -> String {
        self.wait_until(|_, eof| eof, "EOF").await
    }

    /// Closes the reader (the client goes away); what it read is returned.
    pub async fn close(mut self) -> String {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.text()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.task.abort();
    }
}
