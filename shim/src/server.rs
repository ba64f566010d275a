//! The shim server: the process containerd dials. It serves the task
//! service under both names containerd calls it by, `containerd.task.v2.Task`
//! and `containerd.task.v3.Task` (the same messages), on the socket `start`
//! chose, until Shutdown finds no container left.

use std::{collections::HashMap, path::Path, sync::Arc};

use containerd_shim::{
    asynchronous::{publisher::RemotePublisher, ExitSignal},
    protos::{
        shim_async::{create_task, Task},
        ttrpc::r#async::{transport::Listener, Server, Service},
    },
    Flags,
};

use crate::{
    cleanup::CleanupIn, events::Events, reaper, reaper::Reaper, service::TaskService, Error, Result,
};

/// The task service's ttrpc name in task API v2, as containerd-shim-protos
/// registers it.
pub const TASK_V2: &str = "containerd.task.v2.Task";
/// The same service in task API v3 (containerd 2.x).
pub const TASK_V3: &str = "containerd.task.v3.Task";

/// Environment variable through which `start` tells the server which
/// containerd started it (containerd 2.3 and later say).
pub const CONTAINERD_VERSION_ENV: &str = "RUNSC_SHIM_CONTAINERD_VERSION";

/// Serves the task API at `flags.socket` for the first container's
/// `bundle` until the shim is told to exit.
pub async fn serve(flags: &Flags, bundle: &Path) -> Result<()> {
    if flags.socket.is_empty() {
        return Err(Error::InvalidArgument(
            "the shim server needs -socket".to_string(),
        ));
    }
    crate::logging::init(flags.debug);
    match std::env::var(CONTAINERD_VERSION_ENV) {
        Ok(v) => log::info!(
            "serving containerd {v} on {}: task API v2 and v3",
            flags.socket
        ),
        Err(_) => log::debug!("serving {}: task API v2 and v3", flags.socket),
    }
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").map_err(|e| {
        Error::InvalidArgument(format!("TTRPC_ADDRESS (containerd's event socket): {e}"))
    })?;
    // Our own pid in the first container's bundle, as containerd's shims do.
    crate::bundle::Bundle::new(bundle).write_shim_pid();
    reaper::reap_children()?;
    // A server without exits would leave every Wait hanging: fail instead.
    let reaper = Reaper::start().await?;
    ignore_termination()?;
    let publisher = RemotePublisher::new(&ttrpc_address)
        .await
        .map_err(|e| Error::Other(format!("connect to containerd at {ttrpc_address}: {e}")))?;
    let exit = Arc::new(ExitSignal::default());
    let service = TaskService::new(
        Events::new(Some(publisher), &flags.namespace),
        &flags.namespace,
        exit.clone(),
        reaper,
        CleanupIn::OwnProcess,
    );
    let Some(listener) = listen(&flags.socket, bundle).await? else {
        started();
        return Ok(());
    };
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(task_services(Arc::new(service.clone())));
    server
        .start()
        .await
        .map_err(|e| Error::Other(format!("serve {}: {e}", flags.socket)))?;
    started();
    exit.wait().await;
    // Unlisted first: containerd may re-create a container of the same id
    // (same socket) while runsc's state is still being removed below, and
    // its `start` must then spawn a new server, not find this one refusing
    // work. (A leaked socket costs an inode forever, gvisor#13509.)
    remove_socket(&flags.socket);
    service.finish_cleanups().await;
    if let Err(e) = server.shutdown().await {
        log::warn!("shut the ttrpc server down: {e}");
    }
    Ok(())
}

/// The task service under both of its names.
pub fn task_services(task: Arc<dyn Task + Send + Sync>) -> HashMap<String, Service> {
    let mut services = create_task(task.clone());
    if let Some(v3) = create_task(task).remove(TASK_V2) {
        services.insert(TASK_V3.to_string(), v3);
    }
    services
}

/// Listens at `socket`. `None` when another live server already serves it
/// (then its address goes into the bundle, as `start` would have written).
async fn listen(socket: &str, bundle: &Path) -> Result<Option<Listener>> {
    let path = socket.trim_start_matches("unix://").to_string();
    let bind = |path: &str| -> std::io::Result<std::os::unix::net::UnixListener> {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::os::unix::net::UnixListener::bind(path)
    };
    let listener = match bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                let _ = std::fs::write(crate::bundle::Bundle::new(bundle).address_file(), socket);
                return Ok(None);
            }
            // A dead server's socket: take the path over.
            let _ = std::fs::remove_file(&path);
            bind(&path).map_err(|e| Error::os(format!("listen on {path}"), e))?
        }
        Err(e) => return Err(Error::os(format!("listen on {path}"), e)),
    };
    Listener::try_from(listener)
        .map(Some)
        .map_err(|e| Error::os(format!("listen on {path}"), e))
}

/// Tells `start` the server listens: `start` reads our stdout to its end,
/// so it now points at stderr.
fn started() {
    if let Err(e) = nix::unistd::dup2_stdout(std::io::stderr()) {
        log::warn!("close the start pipe: {e}");
    }
}

/// SIGTERM and SIGINT are logged, not obeyed, as containerd-shim's servers
/// do: a shim ends when containerd's Shutdown finds nothing left to serve.
fn ignore_termination() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let mut s = signal(kind).map_err(|e| Error::os("subscribe to SIGTERM/SIGINT", e))?;
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                log::debug!("ignored signal {}", kind.as_raw_value());
            }
        });
    }
    Ok(())
}

/// Removes the server's socket file, while it still listens there, so no
/// other server can have taken the path yet.
fn remove_socket(socket: &str) {
    let path = socket.trim_start_matches("unix://");
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("remove socket {path}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Task for Nothing {}

    #[test]
    fn the_task_service_answers_to_v2_and_v3() {
        let services = task_services(Arc::new(Nothing));
        let mut names: Vec<_> = services.keys().cloned().collect();
        names.sort();
        assert_eq!(names, [TASK_V2, TASK_V3]);
        let methods = |name: &str| {
            let mut m: Vec<_> = services[name].methods.keys().cloned().collect();
            m.sort();
            m
        };
        assert_eq!(methods(TASK_V2), methods(TASK_V3));
        assert!(methods(TASK_V3).contains(&"Create".to_string()));
    }
}
