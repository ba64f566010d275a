//! Exec: processes added to a running container, and their start, the
//! cheapest way the runsc in use allows ([`runsc::Runsc::start_exec`]:
//! over the sandbox's control socket, else `runsc exec`).

use std::sync::Arc;

use containerd_shim::api;
use runsc::{ExecStart, StartedExec};
use shim_io::RelayMode;

use super::{exit::ExitSource, io::runtime_stdio, Service};
use crate::{
    blocking::blocking,
    container::Container,
    error::{validate_id, Error, Result},
    events::{TaskExecAdded, TaskExecStarted},
    process::{AfterFailedStart, Process, ProcessKind, StdioPaths, WindowChanges},
    rewrite::exec as exec_rewrite,
};

impl Service {
    pub(super) async fn exec(&self, req: api::ExecProcessRequest) -> Result<api::Empty> {
        validate_id("exec", &req.exec_id)?;
        let c = self.container(&req.id)?;
        let status = c.init.status();
        if !status.is_live() {
            return Err(Error::FailedPrecondition(format!(
                "cannot exec in container {} in state {status:?}",
                c.id
            )));
        }
        if c.execs().contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists(format!(
                "exec {} already exists in container {}",
                req.exec_id, c.id
            )));
        }
        let spec = exec_process(&c, &req.spec.value).await?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let io = self
            .open_io(&c.id, &stdio, &c.options, RelayMode::Direct)
            .await?;
        let kind = ProcessKind::Exec(req.exec_id.clone());
        let p = Arc::new(Process::new(&c.id, kind, stdio, io, Some(spec)));
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
        // Held until ExecStarted is out, so the exit's event follows it.
        let turn = p.event_turn().await;
        p.begin_start(None)?;
        if !c.init.status().is_live() {
            // The container stopped between Exec and Start. The client
            // reads the exec's FIFOs until EOF and waits for its exit, so
            // both must come, as after any failed start.
            p.start_failed(AfterFailedStart::Exited).await;
            return Err(Error::FailedPrecondition(format!(
                "cannot start exec {exec_id}: container {} is not running",
                c.id
            )));
        }
        let mut spec = p.spec.clone().unwrap_or_default();
        spec.set_terminal(Some(p.stdio.terminal));
        drop_unknown_capabilities(&c.runsc, &c.id, &mut spec).await;
        let (pid_file, internal_pid_file) = c.bundle.exec_pid_files(exec_id);
        let start = ExecStart {
            stdio: runtime_stdio(&p.io),
            console_socket: p.io.console_socket().filter(|_| p.stdio.terminal),
            pid_file,
            internal_pid_file,
        };
        let started = match c.runsc.start_exec(&c.id, &spec, start).await {
            Ok(s) => s,
            Err(e) => {
                p.start_failed(AfterFailedStart::Exited).await;
                return Err(Error::runsc(
                    format!("exec {exec_id} in container {}", c.id),
                    e,
                ));
            }
        };
        let (pid, exit) = match started {
            StartedExec::InSandbox { sandbox, pid } => {
                // No host process of its own runs it: the pid clients see
                // (Start, State, ListPids, whose pids `docker top` looks up
                // in the host's `ps`) is the sandbox's, as for the init.
                let host_pid = match c.init.pid() {
                    0 => u32::try_from(pid).unwrap_or_default(),
                    sandbox => sandbox,
                };
                // Nobody on the host holds its pty: the shim passes resizes on.
                let window = if p.stdio.terminal {
                    WindowChanges::Shim(pid)
                } else {
                    WindowChanges::Kernel
                };
                p.set_in_sandbox(Some(pid), window);
                (host_pid, ExitSource::InSandbox(sandbox, pid))
            }
            // The waiter is reparented to us and may already have exited:
            // the reaper keeps that for us.
            StartedExec::Detached {
                pid,
                internal_pid,
                since,
            } => {
                p.set_in_sandbox(internal_pid, WindowChanges::Kernel);
                (pid, ExitSource::Reaped(self.reaper.claim(pid, since)))
            }
            StartedExec::Attached {
                pid,
                internal_pid,
                exit,
            } => {
                p.set_in_sandbox(internal_pid, WindowChanges::Kernel);
                (pid, ExitSource::RunscExec(exit))
            }
        };
        p.started(pid);
        if let Err(e) = p.io.started().await {
            log::warn!("attach stdio id={} exec_id={exec_id}: {e}", c.id);
        }
        self.supervise(c.clone(), p.clone(), exit);
        self.events
            .send(TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: exec_id.to_string(),
                pid,
                ..Default::default()
            })
            .await;
        drop(turn);
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }
}

/// The exec's process spec, with what it leaves out filled in from the
/// container's as runsc fills it (see [`crate::rewrite::exec`]).
async fn exec_process(c: &Container, raw: &[u8]) -> Result<oci_spec::runtime::Process> {
    let invalid = |e: serde_json::Error| {
        Error::InvalidArgument(format!(
            "invalid exec process spec for container {}: {e}",
            c.id
        ))
    };
    let mut process: serde_json::Value = serde_json::from_slice(raw).map_err(invalid)?;
    let container = if exec_rewrite::needs_container(&process) {
        let bundle = c.bundle.clone();
        let mut spec = blocking(move || crate::spec::read_json(&bundle)).await?;
        spec["process"].take()
    } else {
        serde_json::Value::Null
    };
    let filled = exec_rewrite::complete(&mut process, &container);
    if !filled.is_empty() {
        log::debug!("exec in {}: {filled:?} from the container", c.id);
    }
    serde_json::from_value(process).map_err(invalid)
}

/// An exec of a privileged container asks for every capability the host
/// knows; runsc refuses names it does not know (see [`crate::rewrite`]).
async fn drop_unknown_capabilities(
    runsc: &runsc::Runsc,
    id: &str,
    process: &mut oci_spec::runtime::Process,
) {
    use crate::rewrite::capabilities::drop_unknown_from_process;
    let mut probe = process.clone();
    if drop_unknown_from_process(&mut probe, None).is_empty() {
        return;
    }
    let version = runsc.version().await.ok();
    let release = version.and_then(|v| runsc::release_date(&v));
    for cap in drop_unknown_from_process(process, release) {
        log::warn!(
            "exec in {id}: dropping capability {cap}, which {} does not know",
            runsc.command().display()
        );
    }
}
