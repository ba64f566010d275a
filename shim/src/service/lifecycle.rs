//! Start, Delete, and what happens when a process exits.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use containerd_shim::api;
use runsc::{DeleteOpts, ExitReceiver, RestoreOpts, StartOpts, WaitOpts};
use shim_io::ProcessIo;

use super::{Service, COPY_AFTER_EXIT_TIMEOUT};
use crate::{
    container::{Container, Process, Status},
    convert,
    error::{Error, Result},
    events::{TaskDelete, TaskExit, TaskOOM, TaskStart},
    mount, runtime,
};

/// Runs blocking file-system work (mounts, spec and state files) off the
/// shim's only runtime thread.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::Other(format!("blocking task failed: {e}"))))
}

/// Removes what runsc leaves after its delete: the container's cgroup where
/// runsc left it empty, then a sandbox's runsc root (`root`, for a sandbox
/// only). The root goes last: its [`runtime::CLEANUP_MARK`] tells a new
/// container of the same id when nothing of the old one is left.
pub(super) async fn remove_runsc_leftovers(root: Option<String>, cgroups: Option<PathBuf>) {
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(p) = cgroups {
            crate::cgroup::remove_leftover(&p);
        }
        if let Some(root) = root {
            runtime::remove_sandbox_root(&root);
        }
    })
    .await;
}

/// Reads a pid file runsc wrote.
pub(super) fn read_pid(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| Error::os(format!("read pid file {}", path.display()), e))?;
    s.trim()
        .parse()
        .map_err(|_| Error::Other(format!("pid file {} holds {s:?}", path.display())))
}

/// runsc's stdio for a process from what shim-io opened.
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

impl Service {
    pub(super) async fn start(
        self: Arc<Self>,
        req: api::StartRequest,
    ) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            return self.start_exec(c, &req.exec_id).await;
        }
        let init = c.init.clone();
        // Held until TaskStart is out: an exit seen meanwhile waits for it.
        let turn = init.event_turn().await;
        init.transition(&[Status::Created], Status::Running)?;
        init.set_oom_baseline(c.oom_kills());
        let res = self.start_init(&c).await;
        if let Err(e) = res {
            if c.sub || c.restore_from.is_some() {
                // Leave it stopped so containerd can delete it.
                init.fail_start().await;
            } else {
                // The sandbox may live on; Delete of a created container
                // force-deletes it (unless its exit was seen meanwhile).
                let _ = init.transition(&[Status::Running], Status::Created);
            }
            return Err(e);
        }
        let pid = init.pid();
        self.events
            .send(TaskStart {
                container_id: c.id.clone(),
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

    async fn start_init(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let init = &c.init;
        if let Some(image) = &c.restore_from {
            let pid_file = c.bundle.join("init.pid");
            let since = Instant::now();
            let opts = RestoreOpts {
                stdio: runtime_stdio(&init.io),
                image_path: image.into(),
                bundle: Some(c.bundle.clone()),
                detach: true,
                pid_file: Some(pid_file.clone()),
                console_socket: init.io.console_socket(),
                user_log: None,
                netns_check: c.netns_check,
            };
            c.runsc
                .restore(&c.id, opts)
                .await
                .map_err(|e| Error::runsc(format!("restore container {} from {image}", c.id), e))?;
            let pid = read_pid(&pid_file)? as u32;
            init.set_pid(pid);
            c.set_cgroup_from_pid(pid);
            let rx = self.reaper.claim(pid, since);
            init.io
                .started()
                .await
                .map_err(|e| Error::io(format!("attach stdio of {}", c.id), e))?;
            self.clone().watch_exit(c.clone(), init.clone(), rx);
            return Ok(());
        }
        let stdio = if c.sub {
            runtime_stdio(&init.io)
        } else {
            runsc::Stdio::default()
        };
        let opts = StartOpts {
            stdio,
            netns_check: c.netns_check,
        };
        c.runsc
            .start(&c.id, opts)
            .await
            .map_err(|e| Error::runsc(format!("start container {}", c.id), e))?;
        if c.sub {
            if !init.stdio.terminal {
                init.io
                    .started()
                    .await
                    .map_err(|e| Error::io(format!("attach stdio of {}", c.id), e))?;
            }
            // A sub-container has no host process of its own: ask runsc.
            let svc = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                let status = match c.runsc.wait(&c.id, WaitOpts::default()).await {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("runsc wait id={}: {e}", c.id);
                        128
                    }
                };
                let init = c.init.clone();
                svc.process_exited(&c, &init, status).await;
            });
        }
        Ok(())
    }

    /// Reports `p`'s exit when the reaper sees its host process go.
    pub(super) fn watch_exit(
        self: Arc<Self>,
        c: Arc<Container>,
        p: Arc<Process>,
        rx: ExitReceiver,
    ) {
        tokio::spawn(async move {
            let status = match rx.await {
                Ok(exit) => exit.status,
                Err(_) => 255,
            };
            if p.exec_id.is_empty() && c.try_park(status) {
                return;
            }
            self.process_exited(&c, &p, status).await;
        });
    }

    /// Whether the sandbox process of `c` has exited: the root container's
    /// exit, or (for a member) that container's.
    fn sandbox_gone(&self, c: &Container) -> bool {
        if !c.sub {
            return true;
        }
        self.containers().get(&c.sandbox_id).is_none_or(|root| {
            root.init.exit().is_some() || !runtime::process_alive(root.init.pid())
        })
    }

    /// Drains output, records the exit, publishes OOM (first) and exit.
    pub(super) async fn process_exited(&self, c: &Container, p: &Process, status: i32) {
        let mut status = u32::try_from(status).unwrap_or(255);
        p.io.drain(COPY_AFTER_EXIT_TIMEOUT).await;
        // After the start's event, before the delete's.
        let _turn = p.event_turn().await;
        let oom = p.exec_id.is_empty()
            && self.ooms.take(
                &c.sandbox_id,
                p.oom_baseline(),
                c.oom_kills(),
                status,
                self.sandbox_gone(c),
            );
        if oom && status == 128 {
            status = 137;
        }
        let deleted = p.status() == Status::Deleted;
        if !p.set_exited(status) || deleted {
            return;
        }
        log::debug!("exit id={} exec_id={} status={status}", c.id, p.exec_id);
        if oom {
            self.events
                .send(TaskOOM {
                    container_id: c.id.clone(),
                    ..Default::default()
                })
                .await;
        }
        let exit = p.exit().map(|e| convert::timestamp(e.at));
        self.events
            .send(TaskExit {
                container_id: c.id.clone(),
                id: if p.exec_id.is_empty() {
                    c.id.clone()
                } else {
                    p.exec_id.clone()
                },
                pid: p.pid(),
                exit_status: status,
                exited_at: exit.into(),
                ..Default::default()
            })
            .await;
    }

    pub(super) async fn delete(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        // After the exit's event, and after a Delete already under way:
        // a second Delete (containerd sends one from the exit handler and
        // one from a failed RunPodSandbox's cleanup) waits for the first
        // and then finds the process gone, so containerd never closes the
        // connection under the first one's reply.
        let _turn = p.event_turn().await;
        match p.status() {
            Status::Running | Status::Paused => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot delete running {} {}",
                    p.kind(),
                    p.name()
                )))
            }
            Status::Deleted => {
                return Err(Error::NotFound(format!(
                    "{} {} already deleted",
                    p.kind(),
                    p.name()
                )))
            }
            Status::Created | Status::Stopped => {}
        }
        let was_created = p.status() == Status::Created;
        p.transition(&[Status::Created, Status::Stopped], Status::Deleted)?;
        // A container that ran on its own sandbox leaves only runsc's state
        // and cgroups once it exited. Those go off containerd's critical
        // path, and only once this reply is ready (spawning runsc holds up
        // the runtime thread for about a millisecond); the shim waits for
        // them before it exits.
        let in_background = req.exec_id.is_empty() && !c.sub && !was_created;
        if req.exec_id.is_empty() {
            // Always force: the sandbox may be gone; runsc's state files are not.
            if in_background {
                self.ooms.forget(&c.sandbox_id);
            } else {
                if let Err(e) = c.runsc.delete(&c.id, DeleteOpts { force: true }).await {
                    log::warn!("runsc delete id={}: {e}", c.id);
                }
                let root = (!c.sub).then(|| c.runsc_root.clone());
                remove_runsc_leftovers(root, c.cgroups_path.clone()).await;
            }
            let execs: Vec<_> = c.execs().values().cloned().collect();
            for e in execs {
                e.io.close().await;
            }
            p.io.close().await;
            let (b, mounted) = (c.bundle.clone(), c.rootfs_mounted);
            let mark = in_background.then(|| c.runsc_root.clone());
            let _ = tokio::task::spawn_blocking(move || {
                // Before the answer: the client may reuse the id at once.
                if let Some(root) = mark {
                    runtime::mark_cleanup(&root);
                }
                mount::remove_filestores(&b);
                if mounted {
                    mount::unmount_rootfs(&b);
                }
            })
            .await;
            self.containers().remove(&c.id);
        } else {
            p.io.close().await;
            c.execs().remove(&req.exec_id);
        }
        let exit = p.exit();
        let status = exit
            .map(|e| e.status)
            .unwrap_or(if was_created { 0 } else { 255 });
        let at = convert::timestamp(
            exit.map(|e| e.at)
                .unwrap_or_else(std::time::SystemTime::now),
        );
        if req.exec_id.is_empty() {
            self.events
                .send(TaskDelete {
                    container_id: c.id.clone(),
                    pid: p.pid(),
                    exit_status: status,
                    exited_at: Some(at.clone()).into(),
                    id: c.id.clone(),
                    ..Default::default()
                })
                .await;
        }
        if in_background {
            self.delete_in_background(&c);
        }
        Ok(api::DeleteResponse {
            pid: p.pid(),
            exit_status: status,
            exited_at: Some(at).into(),
            ..Default::default()
        })
    }

    /// Force-deletes `c` in runsc and removes its leftovers as a cleanup the
    /// shim waits for before it exits.
    fn delete_in_background(&self, c: &Container) {
        let r = runtime::without_log(&c.runsc);
        let id = c.id.clone();
        let root = c.runsc_root.clone();
        let cgroups = c.cgroups_path.clone();
        self.cleanups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(async move {
                if let Err(e) = r.delete(&id, DeleteOpts { force: true }).await {
                    log::warn!("runsc delete id={id}: {e}");
                }
                remove_runsc_leftovers(Some(root), cgroups).await;
            });
    }
}
