//! Exec: processes added to a running container, run with
//! `runsc exec --detach`, whose waiting child exits with the process.

use std::sync::Arc;

use containerd_shim::api;
use runsc::ExecOpts;
use shim_io::RelayMode;

use super::{
    lifecycle::{read_pid, runtime_stdio},
    Service,
};
use crate::{
    container::{Container, Process, Status, StdioPaths},
    error::{validate_id, Error, Result},
    events::{TaskExecAdded, TaskExecStarted},
};

impl Service {
    pub(super) async fn exec(&self, req: api::ExecProcessRequest) -> Result<api::Empty> {
        validate_id("exec", &req.exec_id)?;
        let c = self.container(&req.id)?;
        match c.init.status() {
            Status::Running | Status::Paused => {}
            s => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot exec in container {} in state {s:?}",
                    c.id
                )))
            }
        }
        if c.execs().contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists(format!(
                "exec {} already exists in container {}",
                req.exec_id, c.id
            )));
        }
        let spec: oci_spec::runtime::Process = serde_json::from_slice(&req.spec.value)
            .map_err(|e| Error::InvalidArgument(format!("invalid exec process spec: {e}")))?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let io = self
            .open_io(&c.id, &stdio, &c.options, RelayMode::Direct)
            .await?;
        let p = Arc::new(Process::new(&c.id, &req.exec_id, stdio, io, Some(spec)));
        {
            let mut execs = c.execs();
            if execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!(
                    "exec {} already exists",
                    req.exec_id
                )));
            }
            execs.insert(req.exec_id.clone(), p);
        }
        self.events
            .send(TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            })
            .await;
        Ok(api::Empty::new())
    }

    pub(super) async fn start_exec(
        self: Arc<Self>,
        c: Arc<Container>,
        exec_id: &str,
    ) -> Result<api::StartResponse> {
        let p = c.process(exec_id)?;
        if !matches!(c.init.status(), Status::Running | Status::Paused) {
            return Err(Error::FailedPrecondition(format!(
                "cannot start exec {exec_id}: container {} is not running",
                c.id
            )));
        }
        p.transition(&[Status::Created], Status::Running)?;
        let pid_file = c.bundle.join(format!("{exec_id}.pid"));
        let internal_file = c.bundle.join(format!("{exec_id}-internal.pid"));
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&internal_file);
        let mut spec = p.spec.clone().unwrap_or_default();
        spec.set_terminal(Some(p.stdio.terminal));
        let opts = ExecOpts {
            stdio: runtime_stdio(&p.io),
            pid_file: Some(pid_file.clone()),
            internal_pid_file: Some(internal_file.clone()),
            console_socket: p.io.console_socket(),
            detach: true,
        };
        let res = c.runsc.exec(&c.id, &spec, opts).await;
        let pid = match res
            .map_err(|e| Error::runsc(format!("exec {exec_id} in container {}", c.id), e))
            .and_then(|_| read_pid(&pid_file))
        {
            Ok(pid) => pid as u32,
            Err(e) => {
                p.io.close().await;
                p.set_exited(128);
                return Err(e);
            }
        };
        // The waiting `runsc exec` child exits with the process; it may
        // already have, which the reaper kept for us.
        let rx = self.reaper.claim(pid);
        p.set_pid(pid);
        p.set_internal_pid(read_pid(&internal_file).ok());
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&internal_file);
        if let Err(e) = p.io.started().await {
            log::warn!("attach stdio id={} exec_id={exec_id}: {e}", c.id);
        }
        self.events
            .send(TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: exec_id.to_string(),
                pid,
                ..Default::default()
            })
            .await;
        self.clone().watch_exit(c, p, rx);
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }
}
