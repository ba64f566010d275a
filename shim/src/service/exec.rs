//! Exec: processes added to a running container, run with
//! `runsc exec --detach`, whose waiting child exits with the process.

use std::sync::Arc;

use containerd_shim::api;
use runsc::ExecOpts;
use shim_io::RelayMode;

use super::{
    exec_direct::{self, Started},
    lifecycle::{blocking, read_pid, runtime_stdio},
    Service,
};
use crate::{
    container::{Container, Process, Status, StdioPaths, WindowChanges},
    error::{validate_id, Error, Result},
    events::{TaskExecAdded, TaskExecStarted},
    rewrite::exec as exec_rewrite,
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
            // The container stopped between Exec and Start. The client
            // reads the exec's FIFOs until EOF and waits for its exit, so
            // both must come, as after any failed start.
            if p.transition(&[Status::Created], Status::Stopped).is_ok() {
                p.fail_start().await;
            }
            return Err(Error::FailedPrecondition(format!(
                "cannot start exec {exec_id}: container {} is not running",
                c.id
            )));
        }
        // Held until ExecStarted is out, so the exit's event follows it.
        let turn = p.event_turn().await;
        p.transition(&[Status::Created], Status::Running)?;
        let pid_file = c.bundle.join(format!("{exec_id}.pid"));
        let internal_file = c.bundle.join(format!("{exec_id}-internal.pid"));
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&internal_file);
        let mut spec = p.spec.clone().unwrap_or_default();
        spec.set_terminal(Some(p.stdio.terminal));
        drop_unknown_capabilities(&c.runsc, &c.id, &mut spec).await;
        let mut stdio = runtime_stdio(&p.io);
        if let (true, Some(socket)) = (p.stdio.terminal, p.io.console_socket()) {
            if let Some(sb) = c.runsc.sandbox(&c.id).await {
                match exec_direct::start_terminal(&c.runsc, &sb, &c.id, &spec, &socket).await {
                    Ok(Some(pid)) => {
                        p.set_window_changes(WindowChanges::Shim(pid));
                        return Ok(self.direct_exec_started(&c, &p, sb, pid, turn).await);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        p.fail_start().await;
                        return Err(e);
                    }
                }
            }
        }
        if !p.stdio.terminal {
            if let Some(sb) = c.runsc.sandbox(&c.id).await {
                match exec_direct::start(&c.runsc, &sb, &c.id, &spec, stdio).await {
                    Ok(Started::Direct(pid)) => {
                        return Ok(self.direct_exec_started(&c, &p, sb, pid, turn).await);
                    }
                    Ok(Started::Fallback(s)) => stdio = s,
                    Err(e) => {
                        p.fail_start().await;
                        return Err(e);
                    }
                }
            }
        }
        // runsc 0.0~20221219 sets up a console only for `exec --detach`;
        // without a terminal, attached is cheaper: the `runsc exec` child is
        // ours and exits with the process, saving the second runsc start
        // that `--detach` costs.
        let detach = p.stdio.terminal;
        let opts = ExecOpts {
            stdio,
            pid_file: Some(pid_file.clone()),
            internal_pid_file: Some(internal_file.clone()),
            console_socket: p.io.console_socket(),
            detach,
        };
        let runsc = c.runsc.clone();
        let cid = c.id.clone();
        let since = std::time::Instant::now();
        let mut run = tokio::spawn(async move { runsc.exec(&cid, &spec, opts).await });
        let started = if detach {
            match (&mut run).await {
                Ok(Ok(_)) => read_pid(&pid_file).map(|p| p as u32),
                Ok(Err(e)) => Err(Error::runsc(
                    format!("exec {exec_id} in container {}", c.id),
                    e,
                )),
                Err(e) => Err(Error::Other(format!("runsc exec task: {e}"))),
            }
        } else {
            // runsc writes the pid file once the process runs in the sandbox.
            wait_for_pid_file(&pid_file, &mut run).await
        };
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                p.fail_start().await;
                return Err(e);
            }
        };
        let internal_pid = read_pid(&internal_file).ok();
        // Detached, the waiting `runsc exec` child is reparented to us and
        // may already have exited: the reaper keeps that for us.
        let reaped = detach.then(|| self.reaper.claim(pid, since));
        p.set_pid(pid);
        p.set_internal_pid(internal_pid);
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
        drop(turn);
        let svc = self.clone();
        tokio::spawn(async move {
            let status = match reaped {
                Some(rx) => rx.await.map(|e| e.status).unwrap_or(255),
                None => match run.await {
                    Ok(Ok(code)) => code,
                    Ok(Err(e)) => {
                        log::warn!("runsc exec id={} exec_id={}: {e}", c.id, p.exec_id);
                        128
                    }
                    Err(_) => 255,
                },
            };
            svc.process_exited(&c, &p, status).await;
        });
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }
}

impl Service {
    /// Reports a direct exec started and waits for its exit in the sandbox.
    async fn direct_exec_started(
        self: Arc<Self>,
        c: &Arc<Container>,
        p: &Arc<Process>,
        sb: runsc::control::Sandbox,
        pid: i32,
        turn: tokio::sync::MutexGuard<'_, ()>,
    ) -> api::StartResponse {
        // No host process of its own runs a direct exec: the pid clients
        // see (Start, State, ListPids, whose pids `docker top` looks up in
        // the host's `ps`) is the sandbox's, which runs it, as for the init.
        let host_pid = match c.init.pid() {
            0 => u32::try_from(pid).unwrap_or_default(),
            sandbox => sandbox,
        };
        p.set_pid(host_pid);
        p.set_internal_pid(Some(pid));
        if let Err(e) = p.io.started().await {
            log::warn!("attach stdio id={} exec_id={}: {e}", c.id, p.exec_id);
        }
        self.events
            .send(TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: p.exec_id.clone(),
                pid: host_pid,
                ..Default::default()
            })
            .await;
        drop(turn);
        let (svc, c, p) = (self.clone(), c.clone(), p.clone());
        tokio::spawn(async move {
            let status = match sb.wait_pid(pid).await {
                Ok(w) => w.code(),
                Err(e) => {
                    log::warn!("wait for exec id={} exec_id={}: {e}", c.id, p.exec_id);
                    128
                }
            };
            svc.process_exited(&c, &p, status).await;
        });
        api::StartResponse {
            pid: host_pid,
            ..Default::default()
        }
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

/// Waits until `runsc exec` wrote its pid file (the process started) or
/// ended first (it failed, or the process was very short).
async fn wait_for_pid_file(
    pid_file: &std::path::Path,
    run: &mut tokio::task::JoinHandle<runsc::Result<i32>>,
) -> Result<u32> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if let Ok(pid) = read_pid(pid_file) {
            return Ok(pid as u32);
        }
        if run.is_finished() {
            if let Ok(pid) = read_pid(pid_file) {
                return Ok(pid as u32);
            }
            return match run.await {
                Ok(Err(e)) => Err(Error::runsc("exec", e)),
                Ok(Ok(code)) => Err(Error::Other(format!(
                    "runsc exec exited with {code} before the process started"
                ))),
                Err(e) => Err(Error::Other(format!("runsc exec task: {e}"))),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            run.abort();
            return Err(Error::Other(format!(
                "runsc exec did not start the process within 30s ({} missing)",
                pid_file.display()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    }
}
