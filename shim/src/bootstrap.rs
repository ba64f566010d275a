//! containerd's shim verbs, chosen by the command line: `start` (find or
//! spawn the pod's shim server and tell containerd its address, in the
//! form of [`handshake`](crate::handshake)), `delete` (clean up after a
//! container whose shim is gone) and, with no verb, the
//! [`server`] itself.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use containerd_shim::{api::DeleteResponse, protos::protobuf::Message, Flags};

use crate::{
    bundle::Bundle,
    cgroup,
    handshake::{Caller, Handshake},
    options::Options,
    reaper::{self, Reaper},
    server, spec,
    state::State,
    RUNTIME_NAME,
};

/// Runs what this process's command line asks; returns the exit code.
pub async fn run() -> i32 {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let flags = match containerd_shim::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{RUNTIME_NAME}: {e}");
            return 1;
        }
    };
    let bundle = Bundle::new(if flags.bundle.is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        PathBuf::from(&flags.bundle)
    });
    let action = flags.action.clone();
    let res = match action.as_str() {
        // It waits for the server it spawns: off the runtime thread.
        "start" => {
            let b = bundle.clone();
            crate::blocking::blocking(move || start_verb(&flags, &b)).await
        }
        "delete" => delete(&flags.namespace, &flags.id, &bundle)
            .await
            .and_then(|r| {
                r.write_to_bytes()
                    .map_err(|e| crate::Error::Other(format!("encode DeleteResponse: {e}")))
            })
            .and_then(|bytes| write_stdout(&bytes)),
        "" => server::serve(&flags, bundle.path()).await,
        other => Err(crate::Error::InvalidArgument(format!(
            "unknown action {other:?}: expected start, delete or none"
        ))),
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{RUNTIME_NAME}: {e}");
            1
        }
    }
}

/// `start`: reads containerd's handshake from stdin, answers with the
/// address of the server for this container's pod.
fn start_verb(flags: &Flags, bundle: &Bundle) -> crate::Result<()> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| crate::Error::os("read containerd's start parameters", e))?;
    let handshake = Handshake::parse(&raw)?;
    let options = Options::from_any(handshake.options.as_ref())?;
    let address = start(flags, &handshake, &options, bundle)?;
    let api = handshake.task_api(options.task_api);
    write_stdout(&handshake.reply(&address, api)?)
}

fn write_stdout(bytes: &[u8]) -> crate::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| crate::Error::os("write the reply to containerd", e))
}

/// `start`: one shim serves a whole pod, so if the pod's socket is already
/// served, reuse it; otherwise spawn the server and print its address.
fn start(
    flags: &Flags,
    handshake: &Handshake,
    options: &Options,
    bundle: &Bundle,
) -> crate::Result<String> {
    let annotations = spec::read(bundle)
        .ok()
        .and_then(|s| s.annotations().clone());
    let key = spec::grouping_key(&flags.id, annotations.as_ref());
    let address = handshake.socket_address(&flags.address, &flags.namespace, &key);
    let socket_path = address.trim_start_matches("unix://");

    if serving(socket_path) {
        write_address(bundle, &address)?;
        return Ok(address);
    }

    let exe = std::env::current_exe().map_err(|e| crate::Error::os("find own executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(bundle.path())
        .args(["-namespace", &flags.namespace, "-id", &flags.id])
        .args(["-address", &flags.address, "-socket", &address])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(server_stderr(bundle));
    if flags.debug {
        cmd.arg("-debug");
    }
    if let Caller::Bootstrap {
        containerd_version,
        log_level,
        ..
    } = &handshake.caller
    {
        // The server's logger reads RUST_LOG; containerd's level wins over
        // one inherited from containerd's environment.
        cmd.env("RUST_LOG", log_level.as_str())
            .env(server::CONTAINERD_VERSION_ENV, containerd_version);
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
    crate::host::adjust_oom_score(child.id());
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
                let why = std::fs::read_to_string(bundle.server_stderr()).unwrap_or_default();
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
fn server_stderr(bundle: &Bundle) -> Stdio {
    std::fs::File::create(bundle.server_stderr())
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

fn write_address(bundle: &Bundle, address: &str) -> crate::Result<()> {
    let p = bundle.address_file();
    std::fs::write(&p, address).map_err(|e| crate::Error::os(format!("write {}", p.display()), e))
}

/// `delete`: containerd runs this after a container's task is gone or its shim
/// died. If the shim died, force-delete the container in runsc with the
/// binary, root and flags it was created with; unmount its rootfs; report
/// it killed.
async fn delete(namespace: &str, id: &str, bundle: &Bundle) -> crate::Result<DeleteResponse> {
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
    if !server_alive && sandbox {
        // A server killed in the middle of a Create leaves its `runsc
        // create` (and the gofer and sandbox it starts) running on, maybe
        // before runsc wrote any state: they would outlive this delete.
        // Everything run with this sandbox's own root is this container's.
        let arg = format!("--root={root}");
        let _ = crate::blocking::blocking(move || {
            kill_and_wait(&crate::host::pids_with_arg(&arg));
            Ok(())
        })
        .await;
    }
    if !server_alive && runsc::control::state::exists(Path::new(&root), id) {
        reaper::reap_children()?;
        let reaper = Reaper::start().await?;
        let r = crate::client::build_runsc(&options, &root, bundle.path(), flags, Arc::new(reaper));
        if let Err(e) = r.delete(id, runsc::DeleteOpts { force: true }).await {
            eprintln!("runsc shim delete {id}: {e}");
        }
    }
    if sandbox && !server_alive {
        let _ = crate::blocking::blocking(move || {
            crate::sandbox_root::remove_sandbox_root(&root);
            Ok(())
        })
        .await;
    }
    // A server killed during Create leaves the cgroup runsc made for a
    // container it never finished creating (the server's own rollback
    // would have removed it).
    if !server_alive {
        if let Some(path) = spec_cgroups_path(bundle) {
            let _ = crate::blocking::blocking(move || {
                crate::cgroup::remove_leftover(&path);
                Ok(())
            })
            .await;
        }
    }
    crate::mount::remove_filestores(bundle);
    crate::mount::unmount_rootfs(bundle);
    // A live server still serves its socket, or has already removed it.
    if !server_alive {
        remove_dead_socket(bundle);
    }
    let mut resp = DeleteResponse::new();
    resp.exit_status = crate::process::exit_status::KILLED;
    resp.exited_at = Some(crate::convert::now()).into();
    Ok(resp)
}

/// SIGKILLs `pids` and waits (up to 5 s) until they are gone.
fn kill_and_wait(pids: &[i32]) {
    use nix::{sys::signal, unistd::Pid};
    for &pid in pids {
        let _ = signal::kill(Pid::from_raw(pid), signal::Signal::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pids.iter().any(|p| crate::host::process_alive(*p as u32))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The spec's `linux.cgroupsPath`, if the bundle's spec can be read.
fn spec_cgroups_path(bundle: &Bundle) -> Option<std::path::PathBuf> {
    let spec = crate::spec::read(bundle).ok()?;
    spec.linux().as_ref()?.cgroups_path().clone()
}

/// Removes the shim socket named in `<bundle>/address` when no live shim
/// serves it: a shim that was killed never removes its own, and nothing
/// else would (containerd's Go shims leak it too). A pod's shim that still
/// serves other containers keeps it.
fn remove_dead_socket(bundle: &Bundle) {
    let Ok(address) = std::fs::read_to_string(bundle.address_file()) else {
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
fn server_alive(bundle: &Bundle) -> bool {
    let Some(pid) = std::fs::read_to_string(bundle.shim_pid_file())
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

#[cfg(test)]
mod tests {
    use super::*;

    // Seen in the soak (a shim SIGKILLed during Create): the container's
    // cgroup outlived containerd's `shim delete`.
    #[tokio::test]
    async fn delete_after_a_dead_server_removes_the_containers_empty_cgroup() {
        let memory = Path::new("/sys/fs/cgroup/memory");
        let base = if memory.is_dir() {
            memory
        } else {
            Path::new("/sys/fs/cgroup")
        };
        let name = format!("runsc-shim-delete-test-{}", std::process::id());
        let cgroup = base.join(&name);
        std::fs::create_dir(&cgroup).expect("make a cgroup (root)");
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"cgroupsPath": format!("/{name}")}
        });
        std::fs::write(dir.path().join("config.json"), spec.to_string()).expect("spec");
        let bundle = Bundle::new(dir.path());
        let resp = delete("ns", "c1", &bundle).await;
        let left = cgroup.is_dir();
        let _ = std::fs::remove_dir(&cgroup);
        assert!(resp.is_ok(), "{resp:?}");
        assert!(!left, "{} left", cgroup.display());
    }
}
