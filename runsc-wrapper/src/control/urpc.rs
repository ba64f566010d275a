//! gVisor's `urpc` wire format over the sandbox's control socket: one JSON
//! `{"method","arg"}` per request with its file descriptors (SCM_RIGHTS) on
//! the first byte's `sendmsg`, one JSON `{"success","err","result"}` back.
//! There is no framing: the server decodes exactly one JSON value, so a
//! connection carries one call at a time (pipelining loses requests).

use std::{
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, RawFd},
        unix::net::{SocketAddr, UnixStream as StdStream},
    },
    path::{Path, PathBuf},
};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::{io::AsyncReadExt, io::Interest, net::UnixStream};

/// The server's limit on passed descriptors per message.
pub const MAX_FILES: usize = 128;

/// Where a sandbox listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// runsc 0.0~20221219: an abstract name, `runsc-sandbox.<id>` plus the
    /// trailing NUL Go counted into the address.
    Abstract(Vec<u8>),
    /// runsc 0.0~20240729: a socket file named in the state file.
    Path(PathBuf),
}

impl Address {
    /// The 0.0~20221219 address of sandbox `id`.
    pub fn abstract_for(id: &str) -> Address {
        let mut name = format!("runsc-sandbox.{id}").into_bytes();
        name.push(0);
        Address::Abstract(name)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Abstract(n) => {
                write!(f, "@{}", String::from_utf8_lossy(n).trim_end_matches('\0'))
            }
            Address::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How one call failed, before any meaning is given to it.
#[derive(Debug)]
pub enum CallError {
    /// The socket could not be reached, or broke mid-call.
    Transport(io::Error),
    /// The server answered `success: false` with this text.
    Remote(String),
    /// The answer was not the JSON we expect.
    Garbled(String),
}

#[derive(Serialize)]
struct Request<'a, A: Serialize> {
    method: &'a str,
    arg: &'a A,
}

#[derive(Deserialize)]
struct Response<R> {
    success: bool,
    #[serde(default)]
    err: String,
    result: Option<R>,
}

/// One connection to a sandbox's control server.
#[derive(Debug)]
pub struct Conn {
    stream: UnixStream,
}

impl Conn {
    /// Connects (unix-socket connects complete at once or fail at once).
    pub fn connect(addr: &Address) -> io::Result<Conn> {
        let std = match addr {
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                StdStream::connect_addr(&SocketAddr::from_abstract_name(name)?)?
            }
            Address::Path(p) => connect_path(p)?,
        };
        std.set_nonblocking(true)?;
        Ok(Conn {
            stream: UnixStream::from_std(std)?,
        })
    }

    /// Calls `method` with `arg` and `files`; returns the decoded result.
    pub async fn call<A: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        arg: &A,
        files: &[BorrowedFd<'_>],
    ) -> Result<R, CallError> {
        if files.len() > MAX_FILES {
            return Err(CallError::Transport(io::Error::other("too many files")));
        }
        let body = serde_json::to_vec(&Request { method, arg })
            .map_err(|e| CallError::Garbled(format!("encode request: {e}")))?;
        self.send(&body, files)
            .await
            .map_err(CallError::Transport)?;
        let reply = self.receive().await?;
        decode_reply(&reply)
    }

    async fn send(&mut self, body: &[u8], files: &[BorrowedFd<'_>]) -> io::Result<()> {
        let fds: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
        let mut sent = 0;
        while sent < body.len() {
            self.stream.writable().await?;
            let rest = &body[sent..];
            let first = sent == 0;
            let fd = self.stream.as_raw_fd();
            let r = self.stream.try_io(Interest::WRITABLE, || {
                let iov = [io::IoSlice::new(rest)];
                let cmsg = [ControlMessage::ScmRights(&fds)];
                let cmsgs: &[ControlMessage] = if first && !fds.is_empty() { &cmsg } else { &[] };
                sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            });
            match r {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until one complete JSON value has arrived (the server writes
    /// nothing else before the next request).
    async fn receive(&mut self) -> Result<Vec<u8>, CallError> {
        let mut buf = Vec::with_capacity(512);
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(CallError::Transport)?;
            if n == 0 {
                return Err(CallError::Transport(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the sandbox closed the connection",
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
            if reply_complete(&buf)? {
                return Ok(buf);
            }
        }
    }
}

/// The longest reply read: far above any real one (a process list of
/// thousands), and a bound on what a broken sandbox can make the shim hold.
pub const MAX_REPLY: usize = 16 << 20;

/// Whether `buf` holds one whole JSON value yet; an error once it cannot
/// become one, or has grown past [`MAX_REPLY`].
pub fn reply_complete(buf: &[u8]) -> Result<bool, CallError> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<serde::de::IgnoredAny>();
    let complete = match values.next() {
        Some(Ok(_)) => true,
        Some(Err(e)) if e.is_eof() => false,
        Some(Err(e)) => return Err(garbled(buf, &e)),
        None => false,
    };
    if !complete && buf.len() > MAX_REPLY {
        return Err(CallError::Garbled(format!(
            "no complete reply in {} bytes",
            buf.len()
        )));
    }
    Ok(complete)
}

/// A whole reply's result as `R`, or the server's refusal.
pub fn decode_reply<R: DeserializeOwned>(reply: &[u8]) -> Result<R, CallError> {
    let resp: Response<serde_json::Value> =
        serde_json::from_slice(reply).map_err(|e| garbled(reply, &e))?;
    if !resp.success {
        return Err(CallError::Remote(resp.err));
    }
    let value = resp.result.unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value.clone()).map_err(|e| garbled(value.to_string().as_bytes(), &e))
}

fn garbled(bytes: &[u8], e: &serde_json::Error) -> CallError {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    CallError::Garbled(format!("{e} in {text:?}"))
}

/// Socket paths of 108 bytes or more do not fit a `sockaddr_un`: connect
/// through `/proc/self/fd` of an `O_PATH` descriptor, as runsc does.
fn connect_path(p: &Path) -> io::Result<StdStream> {
    if p.as_os_str().len() < 108 {
        return StdStream::connect(p);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(p)?;
    StdStream::connect(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2022_address_keeps_go_s_trailing_nul() {
        assert_eq!(
            Address::abstract_for("abc"),
            Address::Abstract(b"runsc-sandbox.abc\0".to_vec())
        );
        assert_eq!(
            Address::abstract_for("abc").to_string(),
            "@runsc-sandbox.abc"
        );
    }

    #[test]
    fn a_request_is_one_compact_json_object() {
        let body = serde_json::to_vec(&Request {
            method: "containerManager.StartRoot",
            arg: &"sb1",
        })
        .unwrap();
        assert_eq!(
            body,
            br#"{"method":"containerManager.StartRoot","arg":"sb1"}"#
        );
    }
}
