//! containerd's shim verbs: `start` (find or spawn the pod's shim server and
//! print its address), `delete` (clean up after a container whose shim is
//! gone) and the server itself, through containerd-shim's [`Shim`] trait.

use std::{
    io::Read,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use async_trait::async_trait;
use containerd_shim::{
    api::DeleteResponse,
    asynchronous::{publisher::RemotePublisher, ExitSignal, Shim},
    protos::protobuf::{well_known_types::any::Any, Message},
    Config, Flags, StartOpts,
};

use crate::{
    cgroup, events::Events, options::Options, reaper::Reaper, runtime, service::TaskService, spec,
    state::State,
};

type ShimResult<T> = containerd_shim::Result<T>;

fn shim_err(e: impl std::fmt::Display) -> containerd_shim::Error {
    containerd_shim::Error::Other(e.to_string())
}

/// The runsc shim.
pub struct RunscShim {
    exit: Arc<ExitSignal>,
    debug: bool,
    namespace: String,
    id: String,
    bundle: PathBuf,
    socket: String,
    service: std::sync::OnceLock<TaskService>,
}

#[async_trait]
impl Shim for RunscShim {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        RunscShim {
            exit: Arc::new(ExitSignal::default()),
            debug: args.debug,
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle,
            socket: args.socket.clone(),
            service: std::sync::OnceLock::new(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> ShimResult<String> {
        start(opts, &self.bundle).map_err(shim_err)
    }

    async fn delete_shim(&mut self) -> ShimResult<DeleteResponse> {
        delete(&self.namespace, &self.id, &self.bundle)
            .await
            .map_err(shim_err)
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
        // Unlisted first: containerd may re-create a container of the same
        // id (same socket) while runsc's state is still being removed below,
        // and its `start` must then spawn a new server, not find this one
        // refusing work. (containerd-shim removes the socket named in
        // `./address` only later, and not at all when the first container's
        // bundle, our cwd, is gone, as in a pod: a leaked socket costs an
        // inode forever, gvisor#13509.)
        self.remove_socket();
        if let Some(s) = self.service.get() {
            s.finish_cleanups().await;
        }
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        crate::logging::init(self.debug);
        // Our own pid in the first container's bundle, as containerd's shims do.
        let _ = std::fs::write(self.bundle.join("shim.pid"), std::process::id().to_string());
        let reaper = match Reaper::start().await {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot subscribe to exits: {e}");
                Reaper::default()
            }
        };
        let service = TaskService::new(
            Events::new(Some(publisher), &self.namespace),
            &self.namespace,
            self.exit.clone(),
            reaper,
        );
        let _ = self.service.set(service.clone());
        service
    }
}

impl RunscShim {
    /// Removes this server's socket file. Done as soon as the server is to
    /// exit, while it still listens there, so no other server can have
    /// taken the path yet.
    fn remove_socket(&self) {
        let path = self.socket.trim_start_matches("unix://");
        if path.is_empty() {
            return;
        }
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("remove socket {path}: {e}");
            }
        }
    }
}

/// `start`: one shim serves a whole pod, so if the pod's socket is already
/// served, reuse it; otherwise spawn the server and print its address.
fn start(opts: StartOpts, bundle: &Path) -> crate::Result<String> {
    let annotations = spec::read(bundle)
        .ok()
        .and_then(|s| s.annotations().clone());
    let key = spec::grouping_key(&opts.id, annotations.as_ref());
    let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &key);
    let socket_path = address.trim_start_matches("unix://");

    if serving(socket_path) {
        write_address(bundle, &address)?;
        return Ok(address);
    }

    // containerd passes the runtime options on stdin.
    let mut raw = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut raw);
    let options = if raw.is_empty() {
        Options::default()
    } else {
        let any = Any::parse_from_bytes(&raw)
            .map_err(|e| crate::Error::InvalidArgument(format!("decode runtime options: {e}")))?;
        Options::from_any(Some(&any))?
    };

    let exe = std::env::current_exe().map_err(|e| crate::Error::os("find own executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(bundle)
        .args(["-namespace", &opts.namespace, "-id", &opts.id])
        .args(["-address", &opts.address, "-socket", &address])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(server_stderr(bundle));
    if opts.debug {
        cmd.arg("-debug");
    }
    // The server outlives this process; nothing here reaps it but init or
    // containerd's subreaper once we exit.
    let mut child = cmd
        .spawn()
        .map_err(|e| crate::Error::os("spawn shim server", e))?;
    if !options.shim_cgroup.is_empty() {
        if let Err(e) = cgroup::add_pid(&options.shim_cgroup, child.id()) {
            log::warn!("cannot move shim into cgroup {}: {e}", options.shim_cgroup);
        }
    }
    runtime::adjust_oom_score(child.id());
    // The server closes its stdout once it listens.
    if let Some(mut out) = child.stdout.take() {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    }
    // EOF also comes from a server that died before listening: make sure it
    // serves, or say why it exited, before containerd dials it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            if !status.success() || !Path::new(socket_path).exists() {
                let why = std::fs::read_to_string(bundle.join(SERVER_STDERR)).unwrap_or_default();
                return Err(crate::Error::Other(format!(
                    "shim server exited with {status} before serving {address}: {}",
                    why.trim()
                )));
            }
            break;
        }
        if UnixStream::connect(socket_path).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    write_address(bundle, &address)?;
    Ok(address)
}

/// Where the server's stderr goes: its bootstrap errors, which `start`
/// reports if the server dies before serving.
const SERVER_STDERR: &str = "shim-server.err";

fn server_stderr(bundle: &Path) -> Stdio {
    std::fs::File::create(bundle.join(SERVER_STDERR))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// True if a shim serves `path`. A busy server may be slow to accept, so a
/// socket that exists gets a few tries before it counts as stale (a second
/// server would take the pod's socket over).
fn serving(path: &str) -> bool {
    for _ in 0..20 {
        if !Path::new(path).exists() {
            return false;
        }
        if UnixStream::connect(path).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

fn write_address(bundle: &Path, address: &str) -> crate::Result<()> {
    let p = bundle.join("address");
    std::fs::write(&p, address).map_err(|e| crate::Error::os(format!("write {}", p.display()), e))
}

/// `delete`: containerd runs this after a container's task is gone or its shim
/// died. If the shim died, force-delete the container in runsc with the
/// binary, root and flags it was created with; unmount its rootfs; report
/// it killed.
async fn delete(namespace: &str, id: &str, bundle: &Path) -> crate::Result<DeleteResponse> {
    crate::error::validate_id("container", id)?;
    let state = State::load(bundle).unwrap_or_else(|e| {
        eprintln!("runsc shim delete {id}: {e}; using defaults");
        None
    });
    let (options, root, flags, sandbox) = match state {
        Some(s) => {
            let sandbox = s.sandbox_id == id;
            (s.options, s.runsc_root, s.runsc_flags, sandbox)
        }
        None => {
            let o = Options::default();
            let root = o.runsc_root(namespace);
            (o, root, Default::default(), false)
        }
    };
    // containerd runs us as soon as it dropped its connection, and waits
    // for us before it answers the client's Delete. When the server is
    // alive it is removing runsc's state in the background and exits only
    // once that is done: leave it to it (a second `runsc delete` would race
    // it and can leave runsc's lock file behind; waiting for it would put
    // that delete back on the client's path). Only a dead server's
    // leftovers are ours to remove.
    let server_alive = server_alive(bundle);
    if !server_alive && runtime::runsc_knows(&root, id) {
        let reaper = Reaper::start().await.unwrap_or_default();
        let r = runtime::build_runsc(&options, &root, bundle, flags, Arc::new(reaper));
        if let Err(e) = r.delete(id, runsc::DeleteOpts { force: true }).await {
            eprintln!("runsc shim delete {id}: {e}");
        }
    }
    if sandbox && !server_alive {
        runtime::remove_sandbox_root(&root);
    }
    crate::mount::remove_filestores(bundle);
    crate::mount::unmount_rootfs(bundle);
    // A live server still serves its socket, or has already removed it.
    if !server_alive {
        remove_dead_socket(bundle);
    }
    let mut resp = DeleteResponse::new();
    resp.exit_status = 128 + libc::SIGKILL as u32;
    resp.exited_at = Some(crate::convert::now()).into();
    Ok(resp)
}

/// Removes the shim socket named in `<bundle>/address` when no live shim
/// serves it: a shim that was killed never removes its own, and nothing
/// else would (containerd's Go shims leak it too). A pod's shim that still
/// serves other containers keeps it.
fn remove_dead_socket(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = address.trim().trim_start_matches("unix://");
    if path.is_empty() || serving(path) {
        return;
    }
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("runsc shim delete: remove socket {path}: {e}");
        }
    }
}

/// Whether the shim server recorded in `<bundle>/shim.pid` is still
/// running (this binary at that pid, so not a recycled pid).
fn server_alive(bundle: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(bundle.join("shim.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    let me = std::fs::read_link("/proc/self/exe").ok();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    exe.is_some() && exe == me
}
