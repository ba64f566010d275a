//! Asynchronous relays between two non-blocking descriptors.
//!
//! Pipe-to-pipe relays (runtime pipe → client FIFO, client FIFO → runtime
//! stdin pipe) use `splice(2)`: no user-space buffer, so "the source is
//! empty" means every byte has moved on. Relays touching a tty (the pty
//! master) use `read`/`write` with a large buffer and publish how many bytes
//! sit in it. Nothing here blocks a thread: readiness comes from tokio's
//! reactor and every call is made with `O_NONBLOCK` set.

use std::{
    io,
    os::fd::{AsFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Weak,
    },
};

use nix::{
    errno::Errno,
    fcntl::{splice, SpliceFFlags},
    unistd::{read, write},
};
use tokio::{io::unix::AsyncFd, task::JoinHandle, time::Instant};

use crate::fifo::{fionread, set_nonblocking, wait_empty, Patience};

/// A descriptor registered with tokio's reactor, shareable between relays.
pub type Shared = Arc<AsyncFd<OwnedFd>>;

/// Registers `fd` (switching it to non-blocking).
pub fn register(fd: OwnedFd) -> io::Result<Shared> {
    set_nonblocking(&fd, true)?;
    // SAFETY: an OwnedFd stays open and always returns the same descriptor
    // for as long as the AsyncFd owns it.
    let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
    Ok(Arc::new(afd))
}

/// How a relay moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `splice(2)`; both ends must be pipes or FIFOs.
    Splice,
    /// `read`/`write` through a buffer of this many bytes.
    Buffer(usize),
}

#[derive(Debug, Default)]
struct State {
    done: AtomicBool,
    buffered: AtomicUsize,
}

/// A running relay task.
#[derive(Debug)]
pub struct Relay {
    name: String,
    task: Option<JoinHandle<()>>,
    state: Arc<State>,
    src: Weak<AsyncFd<OwnedFd>>,
    dst: Weak<AsyncFd<OwnedFd>>,
    /// Strong reference held when the destination must outlive the task
    /// (outputs: the consumer may not have read everything yet).
    keep_dst: Option<Shared>,
    /// How long the source must stay idle before it counts as drained (a
    /// tty hands bytes to its reader through a work queue).
    settle: std::time::Duration,
}

impl Relay {
    /// Starts copying `src` → `dst` until `src` reports EOF (or the
    /// destination is gone). With `keep_dst`, the destination stays open
    /// after EOF until [`Relay::finish`]; without it, the task's reference
    /// is the only one and EOF closes it (stdin).
    pub fn spawn(name: &str, src: Shared, dst: Shared, method: Method, keep_dst: bool) -> Relay {
        let state = Arc::new(State::default());
        let (ws, wd) = (Arc::downgrade(&src), Arc::downgrade(&dst));
        let keep = keep_dst.then(|| dst.clone());
        let st = state.clone();
        let label = name.to_string();
        let task = tokio::spawn(async move {
            let res = match method {
                Method::Splice => splice_loop(&src, &dst).await,
                Method::Buffer(n) => buffer_loop(&src, &dst, n, &st).await,
            };
            match res {
                Ok(n) => log::debug!("{label} relay: EOF after {n} bytes"),
                Err(e) => log::debug!("{label} relay ended: {e}"),
            }
            st.done.store(true, Ordering::Release);
        });
        Relay {
            name: name.to_string(),
            task: Some(task),
            state,
            src: ws,
            dst: wd,
            keep_dst: keep,
            settle: match method {
                Method::Splice => std::time::Duration::ZERO,
                Method::Buffer(_) => std::time::Duration::from_millis(50),
            },
        }
    }

    /// Whether the source is exhausted for now: EOF seen, or nothing left
    /// in the source and nothing held in the buffer.
    fn idle(&self) -> bool {
        if self.state.done.load(Ordering::Acquire) {
            return true;
        }
        let src_empty = match self.src.upgrade() {
            Some(s) => fionread(s.get_ref()).map(|n| n == 0).unwrap_or(true),
            None => true,
        };
        src_empty && self.state.buffered.load(Ordering::Acquire) == 0
    }

    /// Bytes not yet at the consumer: unread in the source, held in the
    /// buffer, unread in the destination.
    fn pending(&self) -> usize {
        let unread = |w: &Weak<AsyncFd<OwnedFd>>| {
            w.upgrade()
                .and_then(|f| fionread(f.get_ref()).ok())
                .unwrap_or(0)
        };
        unread(&self.src) + self.state.buffered.load(Ordering::Acquire) + unread(&self.dst)
    }

    /// Waits (until `deadline`, moved on while bytes move) for the source
    /// to be empty and the
    /// destination to be read by its consumer, then stops the relay and
    /// closes its descriptors. Call after the writer exited.
    pub async fn finish(&mut self, deadline: Instant) {
        let mut pause = std::time::Duration::from_millis(1);
        let mut idle_since: Option<Instant> = None;
        let mut patience = Patience::until(deadline);
        loop {
            if self.state.done.load(Ordering::Acquire) {
                break;
            }
            patience.pending(self.pending());
            if patience.expired() {
                break;
            }
            if self.idle() {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settle {
                    break;
                }
            } else {
                idle_since = None;
            }
            tokio::time::sleep(pause.min(patience.left())).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
        if let Some(d) = self.dst.upgrade() {
            let deadline = Instant::now() + patience.left();
            if self.keep_dst.is_some() && !wait_empty(d.get_ref(), deadline).await {
                log::warn!(
                    "{} relay: consumer did not read everything in time",
                    self.name
                );
            }
        }
        self.stop().await;
    }

    /// Stops the relay now and closes its descriptors.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.keep_dst = None;
    }

    /// Synchronous part of [`Relay::stop`] (for `Drop`).
    pub fn abort(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.keep_dst = None;
    }

    /// Waits for the relay to end by itself (EOF) until `deadline`.
    pub async fn wait_done(&self, deadline: Instant) -> bool {
        while !self.state.done.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.abort();
    }
}

const SPLICE_LEN: usize = 1 << 20;

async fn splice_loop(src: &AsyncFd<OwnedFd>, dst: &AsyncFd<OwnedFd>) -> io::Result<u64> {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    let mut total = 0u64;
    loop {
        let mut rg = src.readable().await?;
        match splice(src.get_ref(), None, dst.get_ref(), None, SPLICE_LEN, flags) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(Errno::EAGAIN) => {
                if fionread(src.get_ref())? == 0 {
                    rg.clear_ready();
                    continue;
                }
                drop(rg);
                let mut wg = dst.writable().await?;
                // Retry once with the writable guard so that a spurious
                // readiness is cleared without losing a wake-up.
                match splice(src.get_ref(), None, dst.get_ref(), None, SPLICE_LEN, flags) {
                    Ok(0) => return Ok(total),
                    Ok(n) => total += n as u64,
                    Err(Errno::EAGAIN) => {
                        if fionread(src.get_ref())? != 0 {
                            wg.clear_ready();
                        }
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

async fn buffer_loop(
    src: &AsyncFd<OwnedFd>,
    dst: &AsyncFd<OwnedFd>,
    size: usize,
    st: &State,
) -> io::Result<u64> {
    let mut buf = vec![0u8; size.max(1)];
    let mut total = 0u64;
    loop {
        let n = {
            let mut g = src.readable().await?;
            match g.try_io(|fd| read(fd.get_ref().as_fd(), &mut buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => n,
                // EIO on a pty master: the slave side is gone.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(total),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        };
        if n == 0 {
            return Ok(total);
        }
        st.buffered.store(n, Ordering::Release);
        let mut off = 0;
        while off < n {
            let mut g = dst.writable().await?;
            match g.try_io(|fd| write(fd.get_ref(), &buf[off..n]).map_err(io::Error::from)) {
                Ok(Ok(w)) => {
                    off += w;
                    st.buffered.store(n - off, Ordering::Release);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    st.buffered.store(0, Ordering::Release);
                    return Err(e);
                }
                Err(_would_block) => {}
            }
        }
        total += n as u64;
    }
}

/// Copy mode, one output: a fresh pipe whose write end is for the runtime
/// (chowned to `uid`:`gid`), spliced into the client's FIFO.
pub fn output(
    path: &std::path::Path,
    name: &str,
    uid: u32,
    gid: u32,
) -> crate::Result<(OwnedFd, Relay)> {
    let shown = path.display().to_string();
    let fifo = crate::fifo::open_output(path, name, false)?;
    let (r, w) = crate::fifo::pipe(&shown)?;
    crate::fifo::chown_fd(&w, uid, gid, &shown)?;
    let reg =
        |fd| register(fd).map_err(|e| crate::Error::io(format!("relay {name} to"), &shown, e));
    let relay = Relay::spawn(name, reg(r)?, reg(fifo.shim)?, Method::Splice, true);
    Ok((w, relay))
}

/// stdin (both modes): `(runtime read end, relay)`. The relay copies the
/// client's FIFO into a pipe and closes the pipe, so the process sees EOF,
/// when the client closes its side or CloseIO finishes the relay.
pub fn input(path: &std::path::Path, uid: u32, gid: u32) -> crate::Result<(OwnedFd, Relay)> {
    let shown = path.display().to_string();
    let reader = crate::fifo::open_input(path)?;
    let (r, w) = crate::fifo::pipe(&shown)?;
    crate::fifo::chown_fd(&r, uid, gid, &shown)?;
    let reg = |fd| register(fd).map_err(|e| crate::Error::io("relay stdin from", &shown, e));
    let relay = Relay::spawn("stdin", reg(reader)?, reg(w)?, Method::Splice, false);
    Ok((r, relay))
}
