//! Exec over the sandbox's control socket: `ExecuteAsync` with the
//! process's stdio, then one `WaitPID` for its exit. No host process is
//! left per exec, and the pid containerd sees is the process's pid in the
//! sandbox. Execs with a terminal still go through `runsc exec`, which makes
//! the pty and forwards window changes as signals.

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
