//! Exec over the sandbox's control socket: `ExecuteAsync` with the
//! process's stdio, then one `WaitPID` for its exit. No host process is
//! left per exec, and the pid containerd sees is the process's pid in the
//! sandbox. With a terminal the shim makes the pty, hands its master to the
//! process's console socket as runsc would, and signals window changes
//! itself (see `WindowChanges`).

use std::os::fd::{AsFd, OwnedFd};

use runsc::{
    control::{process::ExecArgs, Sandbox},
    StdioSource,
};

use crate::error::{Error, Result};

/// How a direct exec attempt ended.
pub(super) enum Started {
    /// Running, with its pid in the sandbox.
    Direct(i32),
    /// The sandbox speaks another dialect: use the CLI with this stdio.
    Fallback(runsc::Stdio),
}

/// Starts `spec` in container `cid` through `sb`.
pub(super) async fn start(
    runsc: &runsc::Runsc,
    sb: &Sandbox,
    cid: &str,
    spec: &oci_spec::runtime::Process,
    stdio: runsc::Stdio,
) -> Result<Started> {
    let net_raw = runsc.config().get("net-raw").is_some_and(|v| v == "true");
    let args = ExecArgs::from_process(cid, spec, net_raw)
        .map_err(|e| Error::InvalidArgument(format!("exec in container {cid}: {e}")))?;
    let files = [
        file_or_null(&stdio.stdin, false)?,
        file_or_null(&stdio.stdout, true)?,
        file_or_null(&stdio.stderr, true)?,
    ];
    let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
    match sb.exec(&args, &fds).await {
        Ok(pid) => Ok(Started::Direct(pid)),
        Err(e) if runsc.falls_back(&e) => Ok(Started::Fallback(stdio)),
        Err(e) => Err(Error::runsc(format!("exec in container {cid}"), e)),
    }
}

/// Starts `spec` with a terminal: a pty made here, its replica given to
/// the process as stdin, stdout and stderr, its master handed to the
/// process's console socket as runsc would hand it.
pub(super) async fn start_terminal(
    runsc: &runsc::Runsc,
    sb: &Sandbox,
    cid: &str,
    spec: &oci_spec::runtime::Process,
    console_socket: &std::path::Path,
) -> Result<Option<i32>> {
    let net_raw = runsc.config().get("net-raw").is_some_and(|v| v == "true");
    let mut args = ExecArgs::from_process(cid, spec, net_raw)
        .map_err(|e| Error::InvalidArgument(format!("exec in container {cid}: {e}")))?;
    args.stdio_is_pty = true;
    let pty = nix::pty::openpty(None, None).map_err(|e| Error::os("open a pty", e.into()))?;
    if let Some(size) = spec.console_size() {
        let (w, h) = (size.width(), size.height());
        let (w, h) = (u32::try_from(w).unwrap_or(0), u32::try_from(h).unwrap_or(0));
        let _ = shim_io::console::resize(&pty.master, w, h);
    }
    let replica = pty.slave.as_fd();
    let pid = match sb.exec(&args, &[replica, replica, replica]).await {
        Ok(pid) => pid,
        Err(e) if runsc.falls_back(&e) => return Ok(None),
        Err(e) => return Err(Error::runsc(format!("exec in container {cid}"), e)),
    };
    drop(pty.slave);
    send_master(console_socket, pty.master).map_err(|e| {
        Error::os(
            format!("hand the pty master to {}", console_socket.display()),
            e,
        )
    })?;
    Ok(Some(pid))
}

/// What runsc does with `--console-socket`: the master as SCM_RIGHTS.
fn send_master(socket: &std::path::Path, master: OwnedFd) -> std::io::Result<()> {
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
    match src {
        StdioSource::Fd(fd) => fd
            .try_clone()
            .map_err(|e| Error::os("duplicate an exec stdio descriptor", e)),
        StdioSource::Null | StdioSource::Inherit => std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| Error::os("open /dev/null", e)),
    }
}
