//! Non-blocking FIFO and pipe primitives.
//!
//! No open in this module can block: on Linux an `O_RDWR` open of a FIFO
//! returns at once (the opener counts as reader and writer), `O_RDONLY |
//! O_NONBLOCK` always succeeds, and `O_WRONLY | O_NONBLOCK` fails with `ENXIO`
//! instead of waiting when no reader exists.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::Path,
    time::Duration,
};

use nix::{
    fcntl::{fcntl, open, FcntlArg, OFlag},
    sys::stat::{fstat, Mode, SFlag},
    unistd::{fchown, pipe2, Gid, Uid},
};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Pipe capacity requested for the pipes and FIFOs the shim relays through
/// (best effort; the default 64 KiB costs many wake-ups per MiB).
pub(crate) const PIPE_SIZE: i32 = 1 << 20;

/// Opens `path` with `flags | O_NONBLOCK | O_CLOEXEC`; `op` names the
/// operation in the error (`open stdout fifo`).
pub fn open_nonblock(path: &Path, flags: OFlag, op: &str) -> Result<OwnedFd> {
    open(
        path,
        flags | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(op, path.display().to_string(), e))
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub fn set_nonblocking(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let bits = fcntl(fd, FcntlArg::F_GETFL)?;
    let mut fl = OFlag::from_bits_retain(bits);
    fl.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(fl))?;
    Ok(())
}

/// Whether `fd` refers to a FIFO or pipe.
pub fn is_fifo(fd: impl AsFd) -> io::Result<bool> {
    let st = fstat(fd.as_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO)
}

/// Bytes waiting to be read from a pipe, FIFO or tty (`FIONREAD`).
pub fn fionread(fd: impl AsFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Best effort: grows the capacity of a pipe or FIFO.
pub fn grow_pipe(fd: impl AsFd) {
    if let Err(e) = fcntl(fd.as_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE)) {
        log::debug!("F_SETPIPE_SZ {PIPE_SIZE}: {e}");
    }
}

/// A close-on-exec pipe, `(read, write)`, both blocking.
pub fn pipe(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("create pipe for", what, e))?;
    grow_pipe(&r);
    Ok((r, w))
}

/// Gives `fd` to `uid`:`gid` unless both are 0.
pub fn chown_fd(fd: impl AsFd, uid: u32, gid: u32, what: &str) -> Result<()> {
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    fchown(
        fd.as_fd(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )
    .map_err(|e| Error::io(format!("chown {uid}:{gid}"), what, e))
}

/// The shim's side and the runtime's side of an output FIFO.
#[derive(Debug)]
pub struct OutputFifo {
    /// `O_RDWR | O_NONBLOCK`: the shim's reference. It keeps the FIFO
    /// usable while the consumer is away and is the handle drained with
    /// `FIONREAD`.
    pub shim: OwnedFd,
    /// `O_WRONLY`, blocking: for the runtime (Direct mode) or `None`.
    pub runtime: Option<OwnedFd>,
}

/// Opens an output FIFO without blocking. With `for_runtime`, also opens a
/// blocking write-only descriptor for the runtime.
pub fn open_output(path: &Path, name: &str, for_runtime: bool) -> Result<OutputFifo> {
    let op = format!("open {name} fifo");
    let shim = open_nonblock(path, OFlag::O_RDWR, &op)?;
    if !is_fifo(&shim).map_err(|e| Error::io(&op, path.display().to_string(), e))? {
        return Err(Error::io(
            op,
            path.display().to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, "not a fifo"),
        ));
    }
    grow_pipe(&shim);
    let runtime = if for_runtime {
        // Succeeds: `shim` is a reader.
        let w = open_nonblock(path, OFlag::O_WRONLY, &op)?;
        set_nonblocking(&w, false).map_err(|e| Error::io(&op, path.display().to_string(), e))?;
        Some(w)
    } else {
        None
    };
    Ok(OutputFifo { shim, runtime })
}

/// Opens an input (stdin) FIFO for reading without blocking.
///
/// The shim keeps no writer of its own: the reader sees EOF once the
/// client's writer has connected and closed again (a FIFO opened before any
/// writer connected reports neither data nor hang-up, so relays wait), and
/// CloseIO ends the relay once the FIFO is drained.
pub fn open_input(path: &Path) -> Result<OwnedFd> {
    let op = "open stdin fifo";
    let reader = open_nonblock(path, OFlag::O_RDONLY, op)?;
    if !is_fifo(&reader).map_err(|e| Error::io(op, path.display().to_string(), e))? {
        return Err(Error::io(
            op,
            path.display().to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, "not a fifo"),
        ));
    }
    Ok(reader)
}

/// Opens `path` for appending, creating it (0640) if missing.
pub fn open_append(path: &Path) -> Result<OwnedFd> {
    open(
        path,
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o640),
    )
    .map_err(|e| Error::io("open log file", path.display().to_string(), e))
}

/// Polls `FIONREAD` on `fd` until it is 0 (the consumer has read every byte)
/// or `deadline` passes. Returns whether the FIFO was emptied.
pub async fn wait_empty(fd: impl AsFd, deadline: Instant) -> bool {
    let mut pause = Duration::from_millis(1);
    let mut patience = Patience::until(deadline);
    loop {
        match fionread(fd.as_fd()) {
            Ok(0) | Err(_) => return true,
            Ok(n) => patience.pending(n),
        }
        if patience.expired() {
            return false;
        }
        tokio::time::sleep(pause.min(patience.left())).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A deadline for draining that moves while the drain makes progress: it
/// exists for writers that never let go (a grandchild holding a pipe), not
/// for readers that are merely slow, which must still get every byte.
#[derive(Debug)]
pub struct Patience {
    patience: Duration,
    deadline: Instant,
    last: usize,
}

impl Patience {
    /// Patience of the time left until `deadline`.
    pub fn until(deadline: Instant) -> Patience {
        Patience {
            patience: deadline.saturating_duration_since(Instant::now()),
            deadline,
            last: usize::MAX,
        }
    }

    /// Records how many bytes still wait; fewer than last time is progress
    /// and restarts the clock.
    pub fn pending(&mut self, bytes: usize) {
        if bytes < self.last {
            self.deadline = Instant::now() + self.patience;
        }
        self.last = bytes;
    }

    /// Whether the time ran out without progress.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Time left before it runs out.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::{mkfifo, write};

    #[test]
    fn opens_never_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
        // No reader: a plain write-only open must fail, not block.
        let e = open_nonblock(&p, OFlag::O_WRONLY, "open stdout fifo").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("open stdout fifo {}: ", p.display())),
            "{e}"
        );
        assert!(e.to_string().contains("No such device or address"), "{e}");
        let out = open_output(&p, "stdout", true).unwrap();
        let w = out.runtime.unwrap();
        write(&w, b"abc").unwrap();
        assert_eq!(fionread(&out.shim).unwrap(), 3);
        let inp = open_input(&p).unwrap();
        assert!(is_fifo(&inp).unwrap());
    }

    #[test]
    fn not_a_fifo_is_an_error() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = open_output(f.path(), "stderr", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("open stderr fifo") && e.contains("not a fifo"),
            "{e}"
        );
    }
}
