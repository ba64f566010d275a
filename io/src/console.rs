//! Terminal mode: the console socket runsc connects to, receipt of the pty
//! master over `SCM_RIGHTS`, and window resizing.

use std::{
    io::{self, IoSliceMut},
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
        unix::fs::PermissionsExt,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use tempfile::TempDir;
use tokio::{io::Interest, net::UnixListener, time::timeout};

use crate::error::{Error, Result};

/// How long `started` waits for runsc to send the pty master.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listening `pty.sock` in a private (0700) temporary directory, removed
/// on drop.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
    _dir: TempDir,
}

impl ConsoleSocket {
    /// Creates the directory (under `$XDG_RUNTIME_DIR` if set, else the
    /// temp dir) and binds the socket. Needs a tokio runtime.
    pub fn new() -> Result<ConsoleSocket> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("pty")
            .tempdir_in(&base)
            .map_err(|e| {
                Error::io(
                    "create console socket dir in",
                    base.display().to_string(),
                    e,
                )
            })?;
        let shown = dir.path().display().to_string();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("chmod console socket dir", &shown, e))?;
        let path = dir.path().join("pty.sock");
        let std_l = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| Error::io("bind console socket", path.display().to_string(), e))?;
        std_l
            .set_nonblocking(true)
            .map_err(|e| Error::io("bind console socket", path.display().to_string(), e))?;
        let listener = UnixListener::from_std(std_l)
            .map_err(|e| Error::io("bind console socket", path.display().to_string(), e))?;
        Ok(ConsoleSocket {
            path,
            listener,
            _dir: dir,
        })
    }

    /// The socket path, for `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection and receives the pty master, within `limit`.
    pub async fn receive(&self, limit: Duration) -> Result<OwnedFd> {
        let shown = self.path.display().to_string();
        match timeout(limit, self.receive_inner()).await {
            Ok(r) => r.map_err(|e| Error::io("receive pty master on", shown, e)),
            Err(_) => Err(Error::Timeout {
                op: "receive pty master on".into(),
                path: shown,
                secs: limit.as_secs(),
            }),
        }
    }

    async fn receive_inner(&self) -> io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().await?;
        loop {
            stream.readable().await?;
            let res = stream.try_io(Interest::READABLE, || {
                let mut buf = [0u8; 4096];
                let mut iov = [IoSliceMut::new(&mut buf)];
                let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
                let msg = recvmsg::<UnixAddr>(
                    stream.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .map_err(io::Error::from)?;
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        // SAFETY: the kernel installed these descriptors for us.
                        fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                Ok((msg.bytes, fds))
            });
            match res {
                Ok((_, fds)) if !fds.is_empty() => {
                    return fds
                        .into_iter()
                        .next()
                        .ok_or_else(|| io::Error::other("no descriptor"));
                }
                Ok((0, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed without sending a descriptor",
                    ))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sets the window size of the pty behind `master` (`TIOCSWINSZ`).
pub fn resize(master: impl AsFd, width: u32, height: u32) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(u16::MAX),
        ws_col: u16::try_from(width).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(master.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
