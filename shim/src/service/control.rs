//! Requests on running tasks: signals, freezing, inspection and resources.

use std::sync::Arc;

use containerd_shim::{api, protos::shim::oci::ProcessDetails};
use runsc::{DeleteOpts, KillOpts};

use super::Service;
use runsc::control::SignalTarget;

use super::exit::ExitSource;
use crate::{
    convert,
    error::{Error, Result},
    events::{TaskPaused, TaskResumed},
    process::{exit_status, Status, WindowChanges},
};

impl Service {
    pub(super) async fn kill(self: Arc<Self>, req: api::KillRequest) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let sig = req.signal;
        // 0 (is it alive?) up to SIGRTMAX.
        let signo = i32::try_from(sig)
            .ok()
            .filter(|s| (0..=libc::SIGRTMAX()).contains(s))
            .ok_or_else(|| Error::InvalidArgument(format!("invalid signal {sig}")))?;
        match p.status() {
            // As containerd's runc shim: "process already finished", which
            // containerd's CRI plugin takes as done.
            Status::Stopped | Status::Deleted => {
                return Err(Error::NotFound(format!(
                    "{}: process already finished",
                    p.name()
                )));
            }
            Status::Created if p.is_init() => {
                // runsc refuses to signal a container that never started;
                // tear it down instead. A root container's sandbox exit is
                // then reported by the reaper.
                c.runsc
                    .delete(&c.id, DeleteOpts { force: true })
                    .await
                    .map_err(|e| Error::runsc(format!("kill created container {}", c.id), e))?;
                if c.is_member() || c.init.pid() == 0 {
                    let (init, status) = (c.init.clone(), exit_status::signalled(signo));
                    let _ = self.supervise(c, init, ExitSource::Known(status)).await;
                }
                return Ok(api::Empty::new());
            }
            Status::Created => {
                return Err(Error::FailedPrecondition(format!(
                    "exec {} not started",
                    p.name()
                )));
            }
            Status::Starting | Status::Running | Status::Paused => {}
        }
        let pid = if p.is_init() {
            None
        } else {
            // Without its pid, runsc would signal the container's init.
            Some(p.internal_pid().ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "{}: its pid inside the sandbox is unknown, so it cannot be signalled",
                    p.name()
                ))
            })?)
        };
        let opts = KillOpts {
            all: req.all && p.is_init(),
            pid,
        };
        c.runsc.kill(&c.id, signo, opts).await.map_err(|e| {
            if p.exit().is_some() || e.is_not_found() || e.is_not_running() {
                Error::NotFound(format!("{} already finished: {}", p.name(), e.message()))
            } else {
                Error::runsc(format!("kill {} with signal {sig}", p.name()), e)
            }
        })?;
        Ok(api::Empty::new())
    }

    pub(super) async fn pause(&self, req: api::PauseRequest) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        c.init.pause()?;
        if let Err(e) = c.runsc.pause(&c.id).await {
            let _ = c.init.resume();
            return Err(Error::runsc(format!("pause container {}", c.id), e));
        }
        self.events
            .send(TaskPaused {
                container_id: c.id.clone(),
                ..Default::default()
            })
            .await;
        Ok(api::Empty::new())
    }

    pub(super) async fn resume(&self, req: api::ResumeRequest) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        c.init.resume()?;
        if let Err(e) = c.runsc.resume(&c.id).await {
            let _ = c.init.pause();
            return Err(Error::runsc(format!("resume container {}", c.id), e));
        }
        self.events
            .send(TaskResumed {
                container_id: c.id.clone(),
                ..Default::default()
            })
            .await;
        Ok(api::Empty::new())
    }

    pub(super) async fn pids(&self, req: api::PidsRequest) -> Result<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let pids = match c.runsc.ps(&c.id).await {
            Ok(pids) => pids,
            // A sandbox that died a moment ago, its exit not handled yet:
            // the init is still listed (below), so that containerd waits
            // for that exit rather than take the shim for a leaked one.
            Err(e) if c.init.pid() != 0 && c.init.exit().is_none() => {
                log::debug!("list processes of {}: {e}", c.id);
                Vec::new()
            }
            Err(e) => return Err(Error::runsc(format!("list processes of {}", c.id), e)),
        };
        // (pid in the sandbox, exec id, pid Start and State report)
        let execs: Vec<(Option<i32>, String, u32)> = c
            .execs()
            .values()
            .map(|p| (p.internal_pid(), p.exec_id().to_string(), p.pid()))
            .collect();
        // The init is the container's first process: the lowest pid that
        // is not an exec's (runsc shows no parent for either). It and each
        // exec are listed with the pid Create, Start and State report for
        // them (as runc's are), so a client can match an entry to its
        // process. Other processes have no host pid: they keep their pid in
        // the sandbox, unless a host process has that number, which a
        // client filtering the host's `ps` by these pids (`docker top`)
        // would show as the container's.
        let candidates = pids.clone();
        let on_host: std::collections::HashSet<i32> = crate::blocking::blocking(move || {
            Ok(candidates
                .into_iter()
                .filter(|p| crate::host::has_pid(*p))
                .collect())
        })
        .await?;
        let init_internal = pids
            .iter()
            .copied()
            .filter(|pid| !execs.iter().any(|(p, ..)| *p == Some(*pid)))
            .min();
        let processes = pids
            .into_iter()
            .filter_map(|pid| {
                let exec = execs.iter().find(|(p, ..)| *p == Some(pid));
                let host_pid = match exec {
                    Some((_, _, host)) if *host != 0 => *host,
                    _ if Some(pid) == init_internal && c.init.pid() != 0 => c.init.pid(),
                    _ if on_host.contains(&pid) => return None,
                    _ => pid as u32,
                };
                let mut info = containerd_shim::protos::types::task::ProcessInfo {
                    pid: host_pid,
                    ..Default::default()
                };
                if let Some((_, exec_id, _)) = exec {
                    let d = ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    };
                    info.info =
                        Some(convert::to_any("containerd.runc.v1.ProcessDetails", &d)).into();
                }
                Some(info)
            })
            .collect::<Vec<_>>();
        // Before its process runs (created, or its start under way) runsc
        // lists nothing; the init is there all the same, as runc's is.
        // containerd, loading shims after a restart, takes a shim whose
        // task lists no process for a leaked one and abandons it.
        let processes = if processes.is_empty() && c.init.pid() != 0 && c.init.exit().is_none() {
            vec![containerd_shim::protos::types::task::ProcessInfo {
                pid: c.init.pid(),
                ..Default::default()
            }]
        } else {
            processes
        };
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    pub(super) fn close_io(&self, req: api::CloseIORequest) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if req.stdin {
            p.io.close_stdin();
        }
        Ok(api::Empty::new())
    }

    pub(super) fn resize_pty(&self, req: api::ResizePtyRequest) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if !p.stdio.terminal {
            return Ok(api::Empty::new());
        }
        p.io.resize(req.width, req.height)
            .map_err(|e| Error::io(format!("resize pty of {}", p.name()), e))?;
        if let WindowChanges::Shim(pid) = p.window_changes() {
            // No host process holds this pty as its terminal: tell the
            // sandbox, as runsc's exec process would have.
            tokio::spawn(async move {
                if let Some(sb) = c.runsc.sandbox(&c.id).await {
                    let sig = libc::SIGWINCH;
                    if let Err(e) = sb.signal(sig, SignalTarget::ForegroundOf(pid)).await {
                        log::debug!("SIGWINCH to exec pid {pid} in {}: {e}", c.id);
                    }
                }
            });
        }
        Ok(api::Empty::new())
    }

    pub(super) async fn update(&self, req: api::UpdateTaskRequest) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        let Some(any) = req.resources.as_ref() else {
            return Err(Error::InvalidArgument("update without resources".into()));
        };
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(&any.value)
            .map_err(|e| Error::InvalidArgument(format!("invalid resources: {e}")))?;
        // systemd owns a unit's cgroup files: what runsc would write there
        // is gone at the next `daemon-reload`. systemd itself takes them.
        if !c.is_member() && c.cgroup().is_some_and(|cg| cg.systemd_unit().is_some()) {
            return update_host_cgroup(c, res).await;
        }
        match c.runsc.update(&c.id, &res).await {
            Ok(()) => Ok(api::Empty::new()),
            // A member shares the sandbox's host cgroup with the whole pod:
            // its limits there would starve or OOM-kill the others.
            Err(runsc::Error::Unsupported { .. }) if c.is_member() => Err(Error::FailedPrecondition(format!(
                "cannot update container {}: {} has no `update`, and the host cgroup is the whole pod's (sandbox {}); the pod's limits are the kubelet's",
                c.id,
                c.runsc.command().display(),
                c.sandbox_id()
            ))),
            // This runsc cannot; the sandbox's host cgroup can.
            Err(runsc::Error::Unsupported { .. }) => update_host_cgroup(c, res).await,
            Err(e) => Err(Error::runsc(format!("update container {}", c.id), e)),
        }
    }

    pub(super) async fn stats(&self, req: api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let stats = match c.init.status() {
            Status::Starting | Status::Running | Status::Paused => match c.runsc.stats(&c.id).await
            {
                Ok(s) => Some(s),
                Err(e) => {
                    log::warn!("runsc stats id={}: {e}", c.id);
                    None
                }
            },
            // The sandbox exists after create, but runsc 0.0~20221219's
            // `events --stats` panics before start: the host cgroup answers.
            Status::Created if c.cgroup().is_some() => None,
            s => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot stat container {} in state {s:?}",
                    c.id
                )))
            }
        };
        // The sandbox's running members share its memory (convert::Scope).
        let (members, sandbox) = {
            let all = self.containers();
            let members = all
                .values()
                .filter(|m| m.is_member() && m.sandbox_id() == c.sandbox_id())
                .filter(|m| m.init.status().is_live())
                .count();
            (members as u64, all.get(c.sandbox_id()).cloned())
        };
        let scope = match (c.is_member(), members) {
            (true, members) => convert::Scope::Member { members },
            (false, 0) => convert::Scope::Sandbox,
            (false, _) => convert::Scope::PodSandbox,
        };
        // The sandbox's cgroup files are read off the runtime thread.
        let metrics = crate::blocking::blocking(move || {
            let cg = sandbox.as_ref().and_then(|s| s.cgroup());
            Ok(convert::metrics(stats.as_ref(), cg, scope))
        })
        .await?;
        Ok(api::StatsResponse {
            stats: Some(metrics).into(),
            ..Default::default()
        })
    }

    pub(super) fn state(&self, req: api::StateRequest) -> Result<api::StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let status = match p.status() {
            Status::Created => api::Status::CREATED,
            // For containerd a start under way has not failed yet.
            Status::Starting | Status::Running => api::Status::RUNNING,
            Status::Paused => api::Status::PAUSED,
            Status::Stopped | Status::Deleted => api::Status::STOPPED,
        };
        let exit = p.exit();
        Ok(api::StateResponse {
            id: if p.is_init() {
                c.id.clone()
            } else {
                p.exec_id().to_string()
            },
            bundle: c.bundle.path().to_string_lossy().into_owned(),
            pid: p.pid(),
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: exit.map(|e| convert::timestamp(e.at)).into(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    pub(super) async fn wait(&self, req: api::WaitRequest) -> Result<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let e = p.wait().await;
        Ok(api::WaitResponse {
            exit_status: e.status,
            exited_at: Some(convert::timestamp(e.at)).into(),
            ..Default::default()
        })
    }

    pub(super) fn connect(&self, req: api::ConnectRequest) -> api::ConnectResponse {
        let task_pid = self.container(&req.id).map(|c| c.init.pid()).unwrap_or(0);
        api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }
    }

    /// Exits only when no container is left and none is being created (one
    /// shim serves a whole pod); from then on no new work is taken.
    pub(super) fn shutdown(&self) {
        use std::sync::atomic::Ordering;
        if !self.containers().is_empty() {
            self.shutdown_deferred.store(true, Ordering::SeqCst);
            return;
        }
        // containerd shuts down a shim it believes runs nothing (after a
        // restart: a shim whose task it does not know, its Create cut
        // off): the Creates under way are undone as they end, and the
        // last one's end shuts the shim down.
        if self.inflight.abandon_all() {
            self.shutdown_deferred.store(true, Ordering::SeqCst);
            return;
        }
        self.shutting_down.store(true, Ordering::SeqCst);
        if !self.inflight.is_empty() {
            // A Create began after the check above: it goes on.
            self.shutting_down.store(false, Ordering::SeqCst);
            return;
        }
        self.exit.signal();
    }

    /// Whether the shim has no container and no Create under way.
    pub(super) fn serves_nothing(&self) -> bool {
        self.containers().is_empty() && self.inflight.is_empty()
    }

    /// Ends the shim after a Delete when a Shutdown was put off until no
    /// container was left.
    pub(super) fn shutdown_if_deferred(&self) {
        use std::sync::atomic::Ordering;
        if self.shutdown_deferred.load(Ordering::SeqCst) && self.containers().is_empty() {
            self.shutdown();
        }
    }
}

/// Applies `res` to the sandbox's host cgroup (files or systemd unit), off
/// the runtime thread.
async fn update_host_cgroup(
    c: Arc<crate::container::Container>,
    res: oci_spec::runtime::LinuxResources,
) -> Result<api::Empty> {
    crate::blocking::blocking(move || {
        let cg = c.cgroup().ok_or_else(|| {
            Error::FailedPrecondition(format!("container {} has no host cgroup", c.id))
        })?;
        cg.update(&res)
    })
    .await?;
    Ok(api::Empty::new())
}
