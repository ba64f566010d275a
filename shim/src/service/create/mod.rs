//! Create: the runsc client, spec checks, rootfs, stdio and `runsc create`
//! of a container, run apart from the request and undone if its client
//! gave up.

use std::{
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use containerd_shim::api;
use runsc::{CreateOpts, DeleteOpts};
use shim_io::{IoConfig, ProcessIo, RelayMode};

use super::{
    lifecycle::{blocking, read_pid, remove_runsc_leftovers, runtime_stdio},
    Service,
};
use crate::{
    container::{Container, Process, StdioPaths},
    error::{validate_id, Error, Result},
    events::{TaskCreate, TaskIO},
    executable, mount,
    options::Options,
    runtime, spec,
    state::State,
};

/// A container id can come back while the previous shim of that id still
/// removes runsc's state, cgroup and root in the background (until its
/// cleanup mark goes; bounded, as that shim bounds its cleanups), or after
/// a crash left state behind: wait briefly, then force it away, so `runsc
/// create` starts clean and nothing of the old container's removal hits
/// the new one.
async fn settle_stale_state(runsc: &runsc::Runsc, root: &str, id: &str) {
    let since = Instant::now();
    if !wait_while(
        || runtime::cleanup_pending(root),
        Duration::from_secs(10),
        POLL,
    )
    .await
    {
        log::warn!("runsc root {root} still being removed after 10s: going on");
    } else if since.elapsed() >= POLL {
        let took = since.elapsed();
        log::debug!("create id={id} waited {took:?} for the previous removal of {root}");
    }
    // The previous removal may have taken the directory with it.
    if let Err(e) = std::fs::create_dir_all(root) {
        log::warn!("create runsc root {root}: {e}");
    }
    let _ = std::fs::remove_file(Path::new(root).join(runtime::CLEANUP_MARK));
    if wait_while(|| runsc.has_state(id), Duration::from_secs(2), 2 * POLL).await {
        return;
    }
    log::warn!("stale runsc state for id={id}: force-deleting it");
    if let Err(e) = runsc.delete(id, DeleteOpts { force: true }).await {
        log::warn!("runsc delete id={id}: {e}");
    }
}

/// How often [`settle_stale_state`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// Checks `busy` every `step` until it is false (true) or `limit` has
/// passed (false).
async fn wait_while(mut busy: impl FnMut() -> bool, limit: Duration, step: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while busy() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(step).await;
    }
    true
}

/// Applies [`crate::rewrite`] to `<bundle>/config.json` for the runsc in
/// use; `sandbox_pid` is the pod's sandbox process for a member (0 else).
async fn rewrite_spec(
    runsc: &runsc::Runsc,
    id: &str,
    bundle: &Path,
    sub: bool,
    sandbox_pid: u32,
) -> Result<()> {
    use crate::rewrite::{apply, capabilities, pod::KUBELET_PODS, Context};
    let path = bundle.join("config.json");
    let b = bundle.to_path_buf();
    let mut spec = blocking(move || crate::spec::read_json(&b)).await?;
    // Only a spec asking for capabilities some runsc lacks costs a
    // `runsc --version` (once per binary).
    let release = if capabilities::unknown_capabilities(&spec, None).is_empty() {
        None
    } else {
        let version = runsc.version().await.ok();
        version.and_then(|v| runsc::release_date(&v))
    };
    let ctx = Context {
        sandbox: !sub,
        sandbox_pid,
        release,
        kubelet_pods: Path::new(KUBELET_PODS),
    };
    let (applied, spec) = blocking(move || {
        let applied = apply(&mut spec, &ctx);
        Ok((applied, spec))
    })
    .await?;
    if !applied.changed() {
        return Ok(());
    }
    for cap in &applied.dropped_capabilities {
        log::warn!(
            "container {id}: dropping capability {cap}, which {} does not know",
            runsc.command().display()
        );
    }
    for v in &applied.unresolved_volumes {
        log::warn!("container {id}: no single kubelet volume {v:?} for its mount hint");
    }
    log::debug!("container {id}: spec rewritten: {applied:?}");
    blocking(move || {
        let data = serde_json::to_vec(&spec)
            .map_err(|e| Error::Other(format!("encode {}: {e}", path.display())))?;
        std::fs::write(&path, data).map_err(|e| Error::os(format!("write {}", path.display()), e))
    })
    .await
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

    /// Create, run apart from the request: if the client has given up by
    /// the time it is done, it is undone.
    pub(super) async fn create_detached(
        self: Arc<Self>,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        // Counted before the check, so a Shutdown either sees this Create
        // or this Create sees the Shutdown.
        self.creating.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.accepting() {
            self.creating.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = req.id.clone();
        let svc = self.clone();
        tokio::spawn(async move {
            let res = svc.clone().create(req).await;
            svc.creating.fetch_sub(1, Ordering::SeqCst);
            if let Err(Ok(_)) = tx.send(res) {
                log::warn!("create id={id} finished after its client gave up: undoing it");
                let undo = api::DeleteRequest {
                    id: id.clone(),
                    ..Default::default()
                };
                if let Err(e) = svc.delete(undo).await {
                    log::warn!("undo create id={id}: {e}");
                }
            }
        });
        rx.await
            .unwrap_or_else(|_| Err(Error::Other("create task ended without an answer".into())))
    }

    async fn create(
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
        let spec = {
            let b = bundle.clone();
            blocking(move || spec::read(&b)).await?
        };
        let annotations = spec.annotations().clone();
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let sub = spec::is_sub_container(annotations.as_ref());
        let sandbox_id = spec::grouping_key(&id, annotations.as_ref());
        // It names a directory: the same rules as any id.
        validate_id("sandbox", &sandbox_id)?;
        // A member's network is its sandbox's.
        let network = (!sub).then(|| spec::network(&spec));
        let host_ns = spec::unshareable_host_namespaces(&spec);
        if !sub && !host_ns.is_empty() {
            log::warn!(
                "container {id} asks for the host's {} namespace(s): gVisor cannot share them, it gets the sandbox's own",
                host_ns.join(", ")
            );
        }
        let monitor: Arc<dyn runsc::ProcessMonitor> =
            Arc::new(runsc::LogMonitor::new(Arc::new(self.reaper.clone())));
        let known = runtime::known_flags(&options, monitor.clone()).await?;
        runtime::check_runsc_config(&options, &known)?;
        let pod_cpu_quota = !sub
            && crate::rewrite::resources::PodResources::from_annotations(annotations.as_ref())
                .has_cpu_quota();
        let mut flags = runtime::runsc_flags(
            &options,
            &sandbox_id,
            &id,
            network.as_ref(),
            pod_cpu_quota,
            &known,
        );
        let sandbox_logs = if sub {
            None
        } else {
            crate::rewrite::pod::sandbox_logs(annotations.as_ref())
        };
        if let Some((_, panic_log)) = &sandbox_logs {
            flags
                .entry("panic-log".into())
                .or_insert_with(|| panic_log.to_string_lossy().into_owned());
        }
        let netns_check = runtime::netns_check(network.as_ref(), &flags);
        log::debug!("create id={id} network={network:?} netns_check={netns_check:?}");
        let root = runtime::sandbox_root(&options, &self.namespace, &sandbox_id);
        let state = State {
            options: options.clone(),
            runsc_flags: flags.clone(),
            runsc_root: root.clone(),
            sandbox_id: sandbox_id.clone(),
        };
        {
            let (b, flags, root) = (bundle.clone(), flags.clone(), root.clone());
            blocking(move || {
                runtime::create_emitted_dirs(&flags);
                std::fs::create_dir_all(&root)
                    .map_err(|e| Error::os(format!("create runsc root {root}"), e))?;
                state.save(&b)?;
                // The pod's shim may serve containers of several bundles.
                let _ = std::fs::write(b.join("shim.pid"), std::process::id().to_string());
                Ok(())
            })
            .await?;
        }
        // A sandbox whose create fails leaves no runsc root behind.
        let mut root_guard = runtime::RemoveRootOnFailure::new(&root, !sub);
        let runsc = runtime::build_runsc(&options, &root, &bundle, flags, monitor);

        let sandbox_pid = if sub {
            self.containers()
                .get(&sandbox_id)
                .map(|s| s.init.pid())
                .unwrap_or(0)
        } else {
            0
        };
        rewrite_spec(&runsc, &id, &bundle, sub, sandbox_pid).await?;
        settle_stale_state(&runsc, &root, &id).await;
        let rootfs_mounted = {
            let (b, m) = (bundle.clone(), req.rootfs.clone());
            blocking(move || mount::mount_rootfs(&b, &m)).await?
        };
        let undo_mount = |b: &Path| {
            if rootfs_mounted {
                mount::unmount_rootfs(b);
            }
        };
        if req.checkpoint.is_empty() {
            if let Err(e) = executable::check(&bundle, &spec) {
                undo_mount(&bundle);
                return Err(e);
            }
        }
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
                // runsc builds a member's terminal at create, too.
                console_socket: if sub && !stdio.terminal {
                    None
                } else {
                    init.io.console_socket()
                },
                pid_file: Some(pid_file.clone()),
                user_log: sandbox_logs.map(|(user, _)| user),
            };
            let since = Instant::now();
            let res = runsc.create(&id, &bundle, opts).await;
            if let Err(e) = res {
                init.io.close().await;
                // A create that failed late (or overran) may have left state.
                if runsc.has_state(&id) {
                    if let Err(e) = runsc.delete(&id, DeleteOpts { force: true }).await {
                        log::warn!("runsc delete id={id} after failed create: {e}");
                    }
                }
                remove_runsc_leftovers(None, cgroups_path).await;
                undo_mount(&bundle);
                return Err(Error::runsc(format!("create container {id}"), e));
            }
            // Without the sandbox's pid its exit could never be reported.
            let read = {
                let f = pid_file.clone();
                blocking(move || read_pid(&f)).await
            };
            pid = match read.map(u32::try_from) {
                Ok(Ok(p)) if p > 0 => p,
                other => {
                    let why = match other {
                        Err(e) => e.to_string(),
                        Ok(_) => format!("pid file {} holds no pid", pid_file.display()),
                    };
                    if let Err(e) = runsc.delete(&id, DeleteOpts { force: true }).await {
                        log::warn!("runsc delete id={id} after create without a pid: {e}");
                    }
                    init.io.close().await;
                    remove_runsc_leftovers(None, cgroups_path).await;
                    undo_mount(&bundle);
                    return Err(Error::Other(format!(
                        "create container {id}: runsc gave no sandbox pid: {why}"
                    )));
                }
            };
            init.set_pid(pid);
            if !sub {
                // The sandbox exits with the root container's status.
                sandbox_exit = Some(self.reaper.claim(pid, since));
            }
            if !sub || stdio.terminal {
                // The console (or the root's stdio) is attached at create.
                if let Err(e) = init.io.started().await {
                    let _ = runsc.delete(&id, DeleteOpts { force: true }).await;
                    init.io.close().await;
                    undo_mount(&bundle);
                    return Err(Error::io(format!("attach stdio of {id}"), e));
                }
            }
            // Docker >= 23 gives the terminal's size in the spec; the process
            // reads it as it starts, before any ResizePty can arrive.
            if let Some((w, h)) = console_size(&spec).filter(|_| stdio.terminal) {
                if let Err(e) = init.io.resize(w, h) {
                    log::warn!("size the console of {id} to {w}x{h}: {e}");
                }
            }
        }
        let container = Arc::new(Container {
            id: id.clone(),
            bundle: bundle.clone(),
            runsc,
            sandbox_id,
            sub,
            runsc_root: root,
            netns_check,
            init: init.clone(),
            execs: Default::default(),
            rootfs_mounted,
            restore_from,
            cgroup: Default::default(),
            cgroups_path: cgroups_path.clone(),
            parked_exit: Default::default(),
            options,
        });
        container.set_cgroup_from_pid(pid);
        self.containers().insert(id.clone(), container.clone());
        root_guard.disarm();
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
}

/// The terminal size a spec asks for (`process.consoleSize`), if any.
fn console_size(spec: &oci_spec::runtime::Spec) -> Option<(u32, u32)> {
    let process = spec.process().as_ref()?;
    let size = process.console_size()?;
    Some((
        u32::try_from(size.width()).ok()?,
        u32::try_from(size.height()).ok()?,
    ))
}
