//! A process's stdio: opened through shim-io with the container's options,
//! and handed to runsc.

use std::sync::Arc;

use shim_io::{IoConfig, ProcessIo, RelayMode};

use super::Service;
use crate::{
    error::{Error, Result},
    options::Options,
    process::StdioPaths,
};

impl Service {
    /// Opens the stdio containerd asked for, for a process of container `id`.
    pub(super) async fn open_io(
        &self,
        id: &str,
        stdio: &StdioPaths,
        options: &Options,
        mode: RelayMode,
    ) -> Result<ProcessIo> {
        let cfg = IoConfig {
            stdin: stdio.stdin.clone(),
            stdout: stdio.stdout.clone(),
            stderr: stdio.stderr.clone(),
            terminal: stdio.terminal,
            uid: options.io_uid,
            gid: options.io_gid,
            container_id: id.to_string(),
            namespace: self.namespace.clone(),
            monitor: Arc::new(self.reaper.clone()),
        };
        ProcessIo::open(cfg, mode)
            .await
            .map_err(|e| Error::io(format!("set up stdio of {id}"), e))
    }
}

/// runsc's stdio for a process from what shim-io opened (taken once).
pub(super) fn runtime_stdio(io: &ProcessIo) -> runsc::Stdio {
    let rs = io.take_runtime_stdio();
    let src = |fd: Option<std::os::fd::OwnedFd>| match fd {
        Some(fd) => runsc::StdioSource::Fd(fd),
        None => runsc::StdioSource::Null,
    };
    runsc::Stdio {
        stdin: src(rs.stdin),
        stdout: src(rs.stdout),
        stderr: src(rs.stderr),
    }
}
