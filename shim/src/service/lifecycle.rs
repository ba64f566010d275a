//! Create, Start, Delete, and what happens when a process exits.

use std::{path::Path, sync::Arc};

use containerd_shim::api;
use runsc::{CreateOpts, DeleteOpts, ExitReceiver, RestoreOpts, StartOpts, WaitOpts};
use shim_io::{IoConfig, ProcessIo, RelayMode};

use super::{Service, COPY_AFTER_EXIT_TIMEOUT};
use crate::{
    container::{Container, Process, Status, StdioPaths},
    convert,
    error::{validate_id, Error, Result},
    events::{TaskCreate, TaskDelete, TaskExit, TaskIO, TaskOOM, TaskStart},
    mount,
    options::Options,
    runtime, spec,
    state::State,
};

/// Reads a pid file runsc wrote.
pub(super) fn read_pid(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| Error::os(format!("read pid file {}", path.display()), e))?;
    s.trim()
        .parse()
        .map_err(|_| Error::Other(format!("pid file {} holds {s:?}", path.display())))
}

/// A container id can come back while the previous shim of that id still
/// removes runsc's state in the background, or after a crash left it behind:
/// wait briefly, then force it away, so `runsc create` starts clean.
async fn settle_stale_state(runsc: &runsc::Runsc, root: &str, id: &str) {
    for _ in 0..100 {
        if !runtime::runsc_knows(root, id) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    log::warn!("stale runsc state for id={id}: force-deleting it");
    if let Err(e) = runsc.delete(id, DeleteOpts { force: true }).await {
        log::warn!("runsc delete id={id}: {e}");
    }
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

    pub(super) async fn create(
        self: Arc<Self>,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        validate_id("container", &req.id)?;
        if self.containers().contains_key(&req.id) {
            return Err(Error::AlreadyExists(format!(
                "container {} already exists",
                req.id
            )));
        }
        let id = req.id.clone();
        let bundle = std::path::PathBuf::from(&req.bundle);
        let options = Options::from_any(req.options.as_ref())?;
        if !options.log_level.is_empty() {
            crate::logging::raise_level(&options.log_level);
        }
        if !options.log_path.is_empty() {
            crate::logging::add_file(&runsc::format_shim_log_path(&options.log_path, &id));
        }
        let spec = spec::read(&bundle)?;
        let annotations = spec.annotations().clone();
        let sub = spec::is_sub_container(annotations.as_ref());
        let sandbox_id = spec::grouping_key(&id, annotations.as_ref());
        let private_net = !sub && spec::wants_private_network(&spec);
        let flags = runtime::runsc_flags(&options, &sandbox_id, &id, private_net);
        runtime::create_emitted_dirs(&flags);
        let root = options.runsc_root(&self.namespace);
        State {
            options: options.clone(),
            runsc_flags: flags.clone(),
            runsc_root: root.clone(),
            sandbox_id: sandbox_id.clone(),
        }
        .save(&bundle)?;
        // The pod's shim may serve containers of several bundles.
        let _ = std::fs::write(bundle.join("shim.pid"), std::process::id().to_string());
        let runsc = runtime::build_runsc(
            &options,
            &root,
            &bundle,
            flags,
            Arc::new(runsc::LogMonitor::new(Arc::new(self.reaper.clone()))),
        );

        settle_stale_state(&runsc, &root, &id).await;
        let rootfs_mounted = mount::mount_rootfs(&bundle, &req.rootfs)?;
        let undo_mount = |b: &Path| {
            if rootfs_mounted {
                mount::unmount_rootfs(b);
            }
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        // A sub-container's gofer inherits `runsc start`'s stdio and outlives
        // the process; copying keeps it off the client's FIFOs.
        let mode = if sub {
            RelayMode::Copy
        } else {
            RelayMode::Direct
        };
        let io = match self.open_io(&id, &stdio, &options, mode).await {
            Ok(io) => io,
            Err(e) => {
                undo_mount(&bundle);
                return Err(e);
            }
        };
        let init = Arc::new(Process::new(&id, "", stdio.clone(), io, None));
        let restore_from = (!req.checkpoint.is_empty()).then(|| req.checkpoint.clone());

        let mut pid = 0;
        let mut sandbox_exit = None;
        if restore_from.is_none() {
            let pid_file = bundle.join("init.pid");
            let opts = CreateOpts {
                // The root container's stdio goes to create; a sub-container's to start.
                stdio: if sub {
                    runsc::Stdio::default()
                } else {
                    runtime_stdio(&init.io)
                },
                console_socket: if sub { None } else { init.io.console_socket() },
                pid_file: Some(pid_file.clone()),
                user_log: None,
            };
            let res = runsc.create(&id, &bundle, opts).await;
            if let Err(e) = res {
                init.io.close().await;
                undo_mount(&bundle);
                return Err(Error::runsc(format!("create container {id}"), e));
            }
            pid = read_pid(&pid_file).map(|p| p as u32).unwrap_or(0);
            init.set_pid(pid);
            if !sub {
                // The sandbox exits with the root container's status.
                sandbox_exit = Some(self.reaper.claim(pid));
                if let Err(e) = init.io.started().await {
                    let _ = runsc.delete(&id, DeleteOpts { force: true }).await;
                    init.io.close().await;
                    undo_mount(&bundle);
                    return Err(Error::io(format!("attach stdio of {id}"), e));
                }
            }
        }
        let container = Arc::new(Container {
            id: id.clone(),
            bundle: bundle.clone(),
            runsc,
            sandbox_id,
            sub,
            init: init.clone(),
            execs: Default::default(),
            rootfs_mounted,
            restore_from,
            ooms_seen: 0.into(),
            cgroup: Default::default(),
            parked_exit: Default::default(),
            options,
        });
        container.set_cgroup_from_pid(pid);
        self.containers().insert(id.clone(), container.clone());
        if let Some(rx) = sandbox_exit {
            self.clone().watch_exit(container.clone(), init.clone(), rx);
        }
        self.events
            .send(TaskCreate {
                container_id: id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                checkpoint: req.checkpoint.clone(),
                pid,
                ..Default::default()
            })
            .await;
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    pub(super) async fn start(
        self: Arc<Self>,
        req: api::StartRequest,
    ) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            return self.start_exec(c, &req.exec_id).await;
        }
        let init = c.init.clone();
        init.transition(&[Status::Created], Status::Running)?;
        let res = self.start_init(&c).await;
        if let Err(e) = res {
            if c.sub || c.restore_from.is_some() {
                // Leave it stopped so containerd can delete it.
                init.io.close().await;
                init.set_exited(128);
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
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    async fn start_init(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let init = &c.init;
        if let Some(image) = &c.restore_from {
            let pid_file = c.bundle.join("init.pid");
            let opts = RestoreOpts {
                stdio: runtime_stdio(&init.io),
                image_path: image.into(),
                bundle: Some(c.bundle.clone()),
                detach: true,
                pid_file: Some(pid_file.clone()),
                console_socket: init.io.console_socket(),
                user_log: None,
            };
            c.runsc
                .restore(&c.id, opts)
                .await
                .map_err(|e| Error::runsc(format!("restore container {} from {image}", c.id), e))?;
            let pid = read_pid(&pid_file)? as u32;
            init.set_pid(pid);
            c.set_cgroup_from_pid(pid);
            let rx = self.reaper.claim(pid);
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
        c.runsc
            .start(&c.id, StartOpts { stdio })
            .await
            .map_err(|e| Error::runsc(format!("start container {}", c.id), e))?;
        if c.sub {
            init.io
                .started()
                .await
                .map_err(|e| Error::io(format!("attach stdio of {}", c.id), e))?;
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

    /// Drains output, records the exit, publishes OOM (first) and exit.
    pub(super) async fn process_exited(&self, c: &Container, p: &Process, status: i32) {
        let mut status = u32::try_from(status).unwrap_or(255);
        p.io.drain(COPY_AFTER_EXIT_TIMEOUT).await;
        let oom = p.exec_id.is_empty() && c.take_new_ooms();
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
        if req.exec_id.is_empty() {
            // Always force: the sandbox may be gone; runsc's state files are not.
            if !c.sub && !was_created {
                // The sandbox has exited: what is left is runsc's state and
                // cgroups. Do it off containerd's critical path; the shim
                // waits for it before exiting.
                let r = runtime::without_log(&c.runsc);
                let id = c.id.clone();
                self.cleanups
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .spawn(async move {
                        if let Err(e) = r.delete(&id, DeleteOpts { force: true }).await {
                            log::warn!("runsc delete id={id}: {e}");
                        }
                    });
            } else if let Err(e) = c.runsc.delete(&c.id, DeleteOpts { force: true }).await {
                log::warn!("runsc delete id={}: {e}", c.id);
            }
            let execs: Vec<_> = c.execs().values().cloned().collect();
            for e in execs {
                e.io.close().await;
            }
            p.io.close().await;
            if c.rootfs_mounted {
                mount::unmount_rootfs(&c.bundle);
            }
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
        Ok(api::DeleteResponse {
            pid: p.pid(),
            exit_status: status,
            exited_at: Some(at).into(),
            ..Default::default()
        })
    }
}
