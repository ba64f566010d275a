//! [`ProcessIo`]: the stdio of one init or exec process.

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use nix::unistd::dup;
use tokio::{sync::watch, time::Instant};

/// How long CloseIO keeps forwarding what the client already wrote.
const STDIN_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

use crate::{
    binary::{self, BinaryLogger},
    console::{self, ConsoleSocket},
    copy::{self, register, Method, Relay, Shared},
    direct::{self, Sink},
    error::{Error, Result},
    fifo::{open_append, open_input, open_output},
    uri::{parse, Stdio},
};

/// Everything needed to set up the stdio of one process.
#[derive(Debug, Clone)]
pub struct IoConfig {
    /// Client's stdin (FIFO path, or empty).
    pub stdin: String,
    /// Client's stdout: FIFO path, `fifo://`, `file://`, `binary://`, or empty.
    pub stdout: String,
    /// Client's stderr, like `stdout`; ignored in terminal mode.
    pub stderr: String,
    /// Whether the process gets a pty.
    pub terminal: bool,
    /// Owner of the pipes created for the runtime (`io_uid`); 0 = unchanged.
    pub uid: u32,
    /// Group of the pipes created for the runtime (`io_gid`); 0 = unchanged.
    pub gid: u32,
    /// Container id (`CONTAINER_ID` of a logging binary).
    pub container_id: String,
    /// containerd namespace (`CONTAINER_NAMESPACE` of a logging binary).
    pub namespace: String,
    /// Spawns the logging binary and reports its exit.
    pub monitor: Arc<dyn process_monitor::ProcessMonitor>,
}

/// How output reaches FIFOs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// The runtime gets the FIFOs themselves (fast, no copy).
    Direct,
    /// The runtime gets fresh pipes; the shim copies (when runsc helpers may
    /// inherit and outlive the runtime's descriptors).
    Copy,
}

/// The descriptors the runtime must get as its stdio. `None` = `/dev/null`.
#[derive(Debug, Default)]
pub struct RuntimeStdio {
    /// The runtime's stdin.
    pub stdin: Option<OwnedFd>,
    /// The runtime's stdout.
    pub stdout: Option<OwnedFd>,
    /// The runtime's stderr.
    pub stderr: Option<OwnedFd>,
}

/// Terminal-mode descriptors opened in `open`, used in `started`.
#[derive(Debug, Default)]
struct PendingConsole {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
}

#[derive(Debug, Default)]
struct Inner {
    runtime: Option<RuntimeStdio>,
    outputs: Vec<Sink>,
    inputs: Vec<Relay>,
    logger: Option<BinaryLogger>,
    console: Option<Arc<ConsoleSocket>>,
    pending: Option<PendingConsole>,
    master: Option<Shared>,
    closed: bool,
}

/// The stdio of one init or exec process. `Send + Sync`; see the crate docs.
#[derive(Debug)]
pub struct ProcessIo {
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    console_path: Option<PathBuf>,
    inner: Mutex<Inner>,
    closed_tx: watch::Sender<bool>,
}

impl ProcessIo {
    /// Opens every requested stream without blocking (a logging binary is
    /// started and awaited, bounded).
    pub async fn open(cfg: IoConfig, mode: RelayMode) -> Result<ProcessIo> {
        let stdin = parse(&cfg.stdin)?;
        let stdout = parse(&cfg.stdout)?;
        let stderr = if cfg.terminal {
            Stdio::None
        } else {
            parse(&cfg.stderr)?
        };
        let mut inner = Inner::default();
        let mut console_path = None;
        if cfg.terminal {
            let sock = ConsoleSocket::new()?;
            console_path = Some(sock.path().to_path_buf());
            inner.console = Some(Arc::new(sock));
            let mut p = PendingConsole::default();
            if let Stdio::Fifo(path) = &stdin {
                p.stdin = Some(open_input(path)?);
            } else if !stdin.is_none() {
                return Err(Error::Unsupported(format!("stdin {:?}", cfg.stdin)));
            }
            match &stdout {
                Stdio::Fifo(path) => p.stdout = Some(open_output(path, "stdout", false)?.shim),
                Stdio::None => {}
                _ => {
                    return Err(Error::Unsupported(format!(
                        "terminal with stdout {:?}",
                        cfg.stdout
                    )))
                }
            }
            inner.pending = Some(p);
            inner.runtime = Some(RuntimeStdio::default());
        } else {
            let mut rt = RuntimeStdio::default();
            open_input_side(&cfg, &stdin, mode, &mut rt, &mut inner)?;
            open_output_side(&cfg, &stdout, &stderr, mode, &mut rt, &mut inner).await?;
            inner.runtime = Some(rt);
        }
        let (closed_tx, _) = watch::channel(false);
        Ok(ProcessIo {
            stdin: cfg.stdin,
            stdout: cfg.stdout,
            stderr: if cfg.terminal {
                String::new()
            } else {
                cfg.stderr
            },
            terminal: cfg.terminal,
            console_path,
            inner: Mutex::new(inner),
            closed_tx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The descriptors for runsc's stdio (taken once; later calls get
    /// `None`s). Drop them (and the `Command` holding them) once runsc
    /// create/start/exec has returned.
    pub fn take_runtime_stdio(&self) -> RuntimeStdio {
        self.lock().runtime.take().unwrap_or_default()
    }

    /// Fresh runtime descriptors on the client's stdout/stderr FIFOs (Direct
    /// mode), for a runtime process that replaces the first one (a sandbox
    /// restored in place after a checkpoint). stdin, files, logging binaries
    /// and terminals are not reattached: those fields are `None`.
    pub fn reopen_outputs(&self) -> Result<RuntimeStdio> {
        use std::os::fd::AsRawFd;
        let g = self.lock();
        let mut rt = RuntimeStdio::default();
        for sink in &g.outputs {
            let Sink::Fifo { name, fd } = sink else {
                continue;
            };
            // Opening /proc/self/fd/N of a FIFO opens the FIFO again; our
            // O_RDWR reference is a reader, so O_WRONLY cannot block.
            let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            let w =
                crate::fifo::open_nonblock(&p, nix::fcntl::OFlag::O_WRONLY, "reopen output fifo")?;
            crate::fifo::set_nonblocking(&w, false)
                .map_err(|e| Error::io("reopen output fifo", p.display().to_string(), e))?;
            match name.as_str() {
                "stderr" => rt.stderr = Some(w),
                _ => rt.stdout = Some(w),
            }
        }
        if rt.stderr.is_none() && self.stderr == self.stdout {
            if let Some(out) = &rt.stdout {
                rt.stderr = Some(dup_for(out, &self.stderr)?);
            }
        }
        Ok(rt)
    }

    /// Terminal mode: the path to pass as `--console-socket`.
    pub fn console_socket(&self) -> Option<PathBuf> {
        self.console_path.clone()
    }

    /// Call after runsc create/start/exec returned OK: drops runtime ends
    /// still held; in terminal mode receives the pty master (bounded by
    /// [`console::RECEIVE_TIMEOUT`]) and starts the relays.
    pub async fn started(&self) -> Result<()> {
        let sock = {
            let mut g = self.lock();
            g.runtime = None;
            if g.pending.is_none() || g.closed {
                return Ok(());
            }
            g.console.clone()
        };
        let Some(sock) = sock else { return Ok(()) };
        let mut closed = self.closed_tx.subscribe();
        let master = tokio::select! {
            r = sock.receive(console::RECEIVE_TIMEOUT) => r?,
            _ = closed.wait_for(|c| *c) => return Ok(()),
        };
        let shown = sock.path().display().to_string();
        let master =
            register(master).map_err(|e| Error::io("register pty master from", &shown, e))?;
        let mut g = self.lock();
        if g.closed {
            return Ok(());
        }
        let pending = g.pending.take().unwrap_or_default();
        if let Some(fd) = pending.stdin {
            let src = register(fd).map_err(|e| Error::io("relay stdin from", &self.stdin, e))?;
            g.inputs.push(Relay::spawn(
                "stdin",
                src,
                master.clone(),
                Method::Buffer(32 << 10),
                false,
            ));
        }
        if let Some(fd) = pending.stdout {
            let dst = register(fd).map_err(|e| Error::io("relay console to", &self.stdout, e))?;
            let r = Relay::spawn(
                "console",
                master.clone(),
                dst,
                Method::Buffer(256 << 10),
                true,
            );
            g.outputs.push(Sink::Relay(r));
        }
        g.master = Some(master);
        g.console = None;
        Ok(())
    }

    /// CloseIO: forwards what the client already wrote, then closes the
    /// process's stdin so it sees EOF. Idempotent; returns at once.
    pub fn close_stdin(&self) {
        let inputs = std::mem::take(&mut self.lock().inputs);
        if inputs.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    let deadline = Instant::now() + STDIN_FLUSH_TIMEOUT;
                    for mut r in inputs {
                        r.finish(deadline).await;
                    }
                });
            }
            Err(_) => drop(inputs),
        }
    }

    /// Sets the pty window size (terminal mode; no-op before `started`).
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let g = self.lock();
        match &g.master {
            Some(m) => console::resize(m.get_ref(), width, height)
                .map_err(|e| Error::io("resize pty of", &self.stdout, e)),
            None => Ok(()),
        }
    }

    /// Call after the process exited: returns once everything it wrote
    /// reached the consumer, or after `timeout` (a grandchild may hold the
    /// pipe), then releases the output side so the consumer sees EOF.
    pub async fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (outputs, mut logger) = {
            let mut g = self.lock();
            g.runtime = None;
            (std::mem::take(&mut g.outputs), g.logger.take())
        };
        for s in outputs {
            s.finish(deadline).await;
        }
        if let Some(l) = logger.as_mut() {
            l.drain(deadline).await;
        }
        // Hand the logger back unless close() ran meanwhile.
        let leftover = {
            let mut g = self.lock();
            if g.closed {
                logger
            } else {
                g.logger = logger;
                None
            }
        };
        if let Some(mut l) = leftover {
            l.stop().await;
        }
    }

    /// Closes every descriptor, stops relays, waits (bounded) for a logging
    /// binary to exit and removes temporary files. Idempotent.
    pub async fn close(&self) {
        let _ = self.closed_tx.send(true);
        let (outputs, inputs, logger, rest) = {
            let mut g = self.lock();
            g.closed = true;
            let outs = std::mem::take(&mut g.outputs);
            let ins = std::mem::take(&mut g.inputs);
            let rest = (
                g.runtime.take(),
                g.console.take(),
                g.pending.take(),
                g.master.take(),
            );
            (outs, ins, g.logger.take(), rest)
        };
        drop(rest);
        for s in outputs {
            s.stop().await;
        }
        for mut r in inputs {
            r.stop().await;
        }
        if let Some(mut l) = logger {
            l.stop().await;
        }
    }

    /// The client's stdin string.
    pub fn stdin_path(&self) -> &str {
        &self.stdin
    }
    /// The client's stdout string.
    pub fn stdout_path(&self) -> &str {
        &self.stdout
    }
    /// The client's stderr string (empty in terminal mode).
    pub fn stderr_path(&self) -> &str {
        &self.stderr
    }
    /// Whether this is a terminal process.
    pub fn terminal(&self) -> bool {
        self.terminal
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        // Relays abort and the logger is killed by their own Drop; fds and
        // the console directory close with the fields.
        let _ = self.closed_tx.send(true);
    }
}

fn open_input_side(
    cfg: &IoConfig,
    stdin: &Stdio,
    mode: RelayMode,
    rt: &mut RuntimeStdio,
    inner: &mut Inner,
) -> Result<()> {
    match stdin {
        Stdio::None => {}
        // Relayed in both modes: handing the FIFO itself to the runtime
        // would need a shim-held writer to keep EOF away until CloseIO, and
        // then a client that closes without CloseIO (ctr's race) would leave
        // the process blocked forever.
        Stdio::Fifo(path) => {
            let _ = mode;
            let (r, relay) = copy::input(path, cfg.uid, cfg.gid)?;
            rt.stdin = Some(r);
            inner.inputs.push(relay);
        }
        _ => return Err(Error::Unsupported(format!("stdin {:?}", cfg.stdin))),
    }
    Ok(())
}

fn dup_for(fd: &OwnedFd, what: &str) -> Result<OwnedFd> {
    dup(fd).map_err(|e| Error::io("dup stdout for stderr", what, e))
}

fn fifo_output(
    cfg: &IoConfig,
    path: &Path,
    name: &str,
    mode: RelayMode,
    inner: &mut Inner,
) -> Result<OwnedFd> {
    match mode {
        RelayMode::Direct => {
            let (w, sink) = direct::output(path, name)?;
            inner.outputs.push(sink);
            Ok(w)
        }
        RelayMode::Copy => {
            let (w, relay) = copy::output(path, name, cfg.uid, cfg.gid)?;
            inner.outputs.push(Sink::Relay(relay));
            Ok(w)
        }
    }
}

async fn open_output_side(
    cfg: &IoConfig,
    stdout: &Stdio,
    stderr: &Stdio,
    mode: RelayMode,
    rt: &mut RuntimeStdio,
    inner: &mut Inner,
) -> Result<()> {
    // One logging binary serves both streams.
    let bin = match (stdout, stderr) {
        (Stdio::Binary { .. }, Stdio::Binary { .. }) if stdout != stderr => {
            return Err(Error::Unsupported(
                "different logging binaries for stdout and stderr".into(),
            ))
        }
        (b @ Stdio::Binary { .. }, _) | (_, b @ Stdio::Binary { .. }) => Some(b),
        _ => None,
    };
    let (mut bin_out, mut bin_err) = (None, None);
    if let Some(Stdio::Binary { path, args }) = bin {
        let (logger, o, e) = binary::spawn(
            path,
            args,
            &cfg.container_id,
            &cfg.namespace,
            &cfg.monitor,
            cfg.uid,
            cfg.gid,
        )
        .await?;
        inner.logger = Some(logger);
        bin_out = Some(o);
        bin_err = Some(e);
    }
    rt.stdout = match stdout {
        Stdio::None => None,
        Stdio::Binary { .. } => bin_out.take(),
        Stdio::File(p) => Some(open_append(p)?),
        Stdio::Fifo(p) => Some(fifo_output(cfg, p, "stdout", mode, inner)?),
    };
    let same = stdout == stderr && !stdout.is_none();
    rt.stderr = match (stderr, &rt.stdout) {
        (Stdio::None, _) => None,
        (Stdio::Binary { .. }, _) => bin_err.take(),
        (_, Some(out)) if same => Some(dup_for(out, &cfg.stderr)?),
        (Stdio::File(p), _) => Some(open_append(p)?),
        (Stdio::Fifo(p), _) => Some(fifo_output(cfg, p, "stderr", mode, inner)?),
    };
    Ok(())
}
