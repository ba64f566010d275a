//! Create as a staged transaction, run apart from the request:
//!
//! 1. [`plan`]: decide everything (role, flags, root, network, stdio);
//!    nothing is done yet.
//! 2. `prepare`: the runsc root and persisted state, the spec rewrites, the
//!    previous container of that id out of the way, the rootfs mounted,
//!    the executable checked, the stdio opened.
//! 3. `launch`: `runsc create`, the sandbox's pid, its exit claimed, the
//!    stdio attached.
//! 4. `register`: the container is served, its exit supervised, and
//!    TaskCreate published.
//!
//! A [`Rollback`] records each step that leaves something behind; when a
//! stage fails it undoes exactly those. A Create whose client gave up by
//! the time it is done, or that containerd abandoned while it ran (a Delete
//! of its id, a Shutdown: [`InFlight`]), is undone as a Delete.

mod inflight;
mod plan;
mod rollback;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use containerd_shim::api;
use runsc::{CreateOpts, DeleteOpts};

use super::{exit::ExitSource, Service};
use crate::{
    blocking::blocking,
    bundle::Bundle,
    client,
    container::{Container, ContainerParts, Role},
    error::{validate_id, Error, Result},
    events::{TaskCreate, TaskIO},
    executable, mount,
    options::Options,
    process::{Process, ProcessKind},
    sandbox_root, spec,
    state::State,
};
pub(super) use inflight::{Fate, InFlight};
use plan::Plan;
use rollback::Rollback;

/// What `prepare` leaves for `launch`.
struct Prepared {
    runsc: runsc::Runsc,
    init: Arc<Process>,
    rootfs_mounted: bool,
}

impl Service {
    /// Create, run apart from the request: if the client has given up by
    /// the time it is done, it is undone.
    pub(super) async fn create_detached(
        self: Arc<Self>,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        // In flight before the check, so a Shutdown either sees this Create
        // or this Create sees the Shutdown.
        let ticket = self.inflight.begin(&req.id);
        if let Err(e) = self.accepting() {
            self.inflight.end(ticket);
            return Err(e);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = req.id.clone();
        let svc = self.clone();
        tokio::spawn(async move {
            let mut res = svc.clone().create(req).await;
            let fate = svc.inflight.end(ticket);
            if fate == Fate::Abandoned && res.is_ok() {
                svc.undo_create(&id, "containerd gave it up while it ran")
                    .await;
                res = Err(Error::FailedPrecondition(format!(
                    "create {id}: abandoned by a Delete or Shutdown while under way"
                )));
            }
            if let Err(Ok(_)) = tx.send(res) {
                svc.undo_create(&id, "finished after its client gave up")
                    .await;
            }
            // A Shutdown that came under this Create may end the shim now;
            // so does an abandoned Create that leaves it serving nothing
            // (containerd, restarted, may have taken the shim back before
            // the undo, and will find its task gone).
            if fate == Fate::Abandoned && svc.serves_nothing() {
                svc.shutdown();
            }
            svc.shutdown_if_deferred();
        });
        rx.await
            .unwrap_or_else(|_| Err(Error::Other("create task ended without an answer".into())))
    }

    /// Deletes a container whose Create nobody waits for any more.
    async fn undo_create(&self, id: &str, why: &str) {
        log::warn!("create id={id} {why}: undoing it");
        let undo = api::DeleteRequest {
            id: id.to_string(),
            ..Default::default()
        };
        if let Err(e) = self.delete(undo).await {
            log::warn!("undo create id={id}: {e}");
        }
    }

    async fn create(
        self: Arc<Self>,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        // Before the id names a log file or reaches runsc.
        validate_id("container", &req.id)?;
        if self.containers().contains_key(&req.id) {
            return Err(Error::AlreadyExists(format!(
                "container {} already exists",
                req.id
            )));
        }
        // It may name any file: read off the runtime thread.
        let any = req.options.clone().into_option();
        let options = blocking(move || Options::from_any(any.as_ref())).await?;
        if !options.log_level.is_empty() {
            crate::logging::raise_level(&options.log_level);
        }
        if !options.log_path.is_empty() {
            let path = runsc::format_shim_log_path(&options.log_path, &req.id);
            crate::logging::add_file(&path);
        }
        let spec = {
            let b = Bundle::new(&req.bundle);
            blocking(move || spec::read(&b)).await?
        };
        let monitor: Arc<dyn runsc::ProcessMonitor> =
            Arc::new(runsc::LogMonitor::new(Arc::new(self.reaper.clone())));
        let known = client::known_flags(&options, monitor.clone()).await?;
        let plan = plan::plan(&req, &spec, options, &self.namespace, &known)?;
        if !plan.unshared_host_namespaces.is_empty() {
            log::warn!(
                "container {} asks for the host's {} namespace(s): gVisor cannot share them, it gets the sandbox's own",
                plan.id,
                plan.unshared_host_namespaces.join(", ")
            );
        }
        log::debug!(
            "create id={} role={:?} netns_check={:?}",
            plan.id,
            plan.role,
            plan.netns_check
        );
        let mut rollback = Rollback::default();
        let staged = async {
            let prepared = self.prepare(&plan, &spec, monitor, &mut rollback).await?;
            let (pid, exit) = self.launch(&plan, &prepared, &mut rollback).await?;
            Ok::<_, Error>((prepared, pid, exit))
        }
        .await;
        let (prepared, pid, exit) = match staged {
            Ok(done) => done,
            Err(e) => {
                rollback.undo().await;
                return Err(e);
            }
        };
        self.register(&req, plan, prepared, pid, exit).await;
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    /// Stage 2: everything before `runsc create`.
    async fn prepare(
        &self,
        plan: &Plan,
        spec: &oci_spec::runtime::Spec,
        monitor: Arc<dyn runsc::ProcessMonitor>,
        rollback: &mut Rollback,
    ) -> Result<Prepared> {
        let state = State {
            options: plan.options.clone(),
            runsc_flags: plan.flags.clone(),
            runsc_root: plan.root.clone(),
            sandbox_id: plan.sandbox_id().to_string(),
        };
        let (b, flags, root) = (plan.bundle.clone(), plan.flags.clone(), plan.root.clone());
        blocking(move || {
            client::create_emitted_dirs(&flags);
            std::fs::create_dir_all(&root)
                .map_err(|e| Error::os(format!("create runsc root {root}"), e))?;
            state.save(&b)?;
            b.write_shim_pid();
            Ok(())
        })
        .await?;
        if plan.role == Role::Sandbox {
            rollback.made_root(&plan.root);
        }
        let runsc = client::build_runsc(
            &plan.options,
            &plan.root,
            plan.bundle.path(),
            plan.flags.clone(),
            monitor,
        );
        let sandbox_pid = match &plan.role {
            Role::Sandbox => None,
            Role::Member { sandbox_id } => self.containers().get(sandbox_id).map(|s| s.init.pid()),
        };
        settle_stale_state(&runsc, &plan.root, &plan.id).await;
        let rootfs_mounted = {
            let (b, m) = (plan.bundle.clone(), plan.rootfs.clone());
            blocking(move || mount::mount_rootfs(&b, &m)).await?
        };
        if rootfs_mounted {
            rollback.mounted(&plan.bundle);
        }
        // After the mount: masked paths are looked up in the rootfs.
        rewrite_spec(&runsc, plan, sandbox_pid).await?;
        if plan.creates() {
            let (b, s) = (plan.bundle.clone(), spec.clone());
            blocking(move || executable::check(b.path(), &s)).await?;
        }
        let io = self
            .open_io(&plan.id, &plan.stdio, &plan.options, plan.relay)
            .await?;
        let init = Arc::new(Process::new(
            &plan.id,
            ProcessKind::Init,
            plan.stdio.clone(),
            io,
            None,
        ));
        rollback.opened_io(&init);
        Ok(Prepared {
            runsc,
            init,
            rootfs_mounted,
        })
    }

    /// Stage 3: `runsc create` (unless restoring), the sandbox's pid, its
    /// exit claimed (a sandbox's process exits with its container), the
    /// stdio attached.
    async fn launch(
        &self,
        plan: &Plan,
        prepared: &Prepared,
        rollback: &mut Rollback,
    ) -> Result<(u32, Option<ExitSource>)> {
        if !plan.creates() {
            return Ok((0, None));
        }
        let (runsc, init, id) = (&prepared.runsc, &prepared.init, &plan.id);
        let member = plan.role.is_member();
        let pid_file = plan.bundle.init_pid_file();
        let opts = CreateOpts {
            // A sandbox's stdio goes to create; a member's to start.
            stdio: if member {
                runsc::Stdio::default()
            } else {
                super::io::runtime_stdio(&init.io)
            },
            // runsc builds a member's terminal at create, too.
            console_socket: if member && !plan.stdio.terminal {
                None
            } else {
                init.io.console_socket()
            },
            pid_file: Some(pid_file.clone()),
            user_log: plan.user_log.clone(),
        };
        rollback.creating(runsc, id, plan.cgroups_path.clone());
        let since = Instant::now();
        runsc
            .create(id, plan.bundle.path(), opts)
            .await
            .map_err(|e| Error::runsc(format!("create container {id}"), e))?;
        rollback.created();
        // Without the sandbox's pid its exit could never be reported.
        let pid = runsc::pid_file::read(&pid_file).await.map_err(|e| {
            Error::Other(format!(
                "create container {id}: runsc gave no sandbox pid: {e}"
            ))
        })?;
        init.set_pid(pid);
        let exit = (!member).then(|| ExitSource::Reaped(self.reaper.claim(pid, since)));
        if !member || plan.stdio.terminal {
            // The console (or the sandbox's stdio) is attached at create.
            init.io
                .started()
                .await
                .map_err(|e| Error::io(format!("attach stdio of {id}"), e))?;
        }
        // Docker >= 23 gives the terminal's size in the spec; the process
        // reads it as it starts, before any ResizePty can arrive.
        if let Some((w, h)) = plan.console_size {
            if let Err(e) = init.io.resize(w, h) {
                log::warn!("size the console of {id} to {w}x{h}: {e}");
            }
        }
        Ok((pid, exit))
    }

    /// Stage 4: serve the container, supervise its exit, publish.
    async fn register(
        self: &Arc<Self>,
        req: &api::CreateTaskRequest,
        plan: Plan,
        prepared: Prepared,
        pid: u32,
        exit: Option<ExitSource>,
    ) {
        let container = Arc::new(Container::new(ContainerParts {
            id: plan.id.clone(),
            bundle: plan.bundle,
            runsc: prepared.runsc,
            role: plan.role,
            runsc_root: plan.root,
            netns_check: plan.netns_check,
            init: prepared.init.clone(),
            rootfs_mounted: prepared.rootfs_mounted,
            restore_from: plan.restore_from,
            cgroups_path: plan.cgroups_path,
            options: plan.options,
            pod_netns: plan.pod_netns,
        }));
        container.find_cgroup(pid).await;
        self.containers().insert(plan.id.clone(), container.clone());
        if let Some(exit) = exit {
            self.supervise(container, prepared.init, exit);
        }
        self.events
            .send(TaskCreate {
                container_id: plan.id,
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
    }
}

/// A container id can come back while the previous shim of that id still
/// removes runsc's state, cgroup and root in the background (until its
/// cleanup mark goes; bounded, as that shim bounds its cleanups), or after
/// a crash left state behind: wait briefly, then force it away, so `runsc
/// create` starts clean and nothing of the old container's removal hits
/// the new one.
async fn settle_stale_state(runsc: &runsc::Runsc, root: &str, id: &str) {
    let since = Instant::now();
    let pending = || {
        let root = root.to_string();
        async move {
            blocking(move || Ok(sandbox_root::cleanup_pending(&root)))
                .await
                .unwrap_or(false)
        }
    };
    if !wait_while(pending, Duration::from_secs(10), POLL).await {
        log::warn!("runsc root {root} still being removed after 10s: going on");
    } else if since.elapsed() >= POLL {
        let took = since.elapsed();
        log::debug!("create id={id} waited {took:?} for the previous removal of {root}");
    }
    let r = root.to_string();
    let _ = blocking(move || {
        // The previous removal may have taken the directory with it.
        if let Err(e) = std::fs::create_dir_all(&r) {
            log::warn!("create runsc root {r}: {e}");
        }
        let _ = std::fs::remove_file(Path::new(&r).join(sandbox_root::CLEANUP_MARK));
        Ok(())
    })
    .await;
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
async fn wait_while<F: std::future::Future<Output = bool>>(
    mut busy: impl FnMut() -> F,
    limit: Duration,
    step: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while busy().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(step).await;
    }
    true
}

/// Applies [`crate::rewrite`] to the bundle's spec for the runsc in use;
/// `sandbox_pid` is the pod's sandbox process for a member.
async fn rewrite_spec(runsc: &runsc::Runsc, plan: &Plan, sandbox_pid: Option<u32>) -> Result<()> {
    use crate::rewrite::{apply, capabilities, paths, pod::KUBELET_PODS, Context};
    let id = &plan.id;
    let b = plan.bundle.clone();
    let mut spec = blocking(move || spec::read_json(&b)).await?;
    // Only a spec asking for capabilities some runsc lacks costs a
    // `runsc --version` (once per binary).
    let release = if capabilities::unknown_capabilities(&spec, None).is_empty() {
        None
    } else {
        let version = runsc.version().await.ok();
        version.and_then(|v| runsc::release_date(&v))
    };
    let (role, bundle) = (plan.role.clone(), plan.bundle.clone());
    let (applied, spec) = blocking(move || {
        let root_path = spec["root"]["path"].as_str().unwrap_or("rootfs");
        let rootfs = bundle.path().join(root_path);
        let root = std::fs::File::open(&rootfs).ok();
        let kind = |p: &str| root.as_ref().and_then(|r| paths::kind_in_rootfs(r, p));
        let masked_file = bundle.masked_file();
        let ctx = Context {
            role: &role,
            sandbox_pid,
            release,
            kubelet_pods: Path::new(KUBELET_PODS),
            rootfs: &rootfs,
            rootfs_kind: &kind,
            masked_file: &masked_file,
        };
        let applied = apply(&mut spec, &ctx);
        if applied.paths.changed() {
            make_masked_file(&masked_file)?;
        }
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
    let path = plan.bundle.config();
    blocking(move || {
        let data = serde_json::to_vec(&spec)
            .map_err(|e| Error::Other(format!("encode {}: {e}", path.display())))?;
        std::fs::write(&path, data).map_err(|e| Error::os(format!("write {}", path.display()), e))
    })
    .await
}

/// The empty, read-only file masked files are bound to.
fn make_masked_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, b"")
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)))
        .map_err(|e| Error::os(format!("create {}", path.display()), e))
}
