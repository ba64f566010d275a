//! The task service's state machine against a fake runsc: a shell script
//! that plays runsc's verbs (its "sandbox" is a `sleep` in a session of its
//! own) and misbehaves on request (hang, slow create, exit during start).
//! This test process is a child subreaper with one `waitpid(-1)` loop that
//! feeds containerd-shim's exit monitor, as the shim's own reaper does.
#![allow(clippy::unwrap_used)]

mod cases;
mod hostile;
mod stalls;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Once},
    time::Duration,
};

use containerd_shim::{
    api,
    asynchronous::ExitSignal,
    protos::{
        protobuf::well_known_types::any::Any,
        shim_async::Task,
        ttrpc::{r#async::TtrpcContext, Code},
    },
};
use containerd_shim_runsc::{
    cleanup::CleanupIn, events::Events, reaper::Reaper, service::TaskService,
};
use tokio::sync::mpsc::UnboundedReceiver;

pub const SIGKILL: u32 = 9;

const FAKE_RUNSC: &str = r#"#!/bin/sh
dir=$(dirname "$0")
log=; pidfile=; ipidfile=; verb=
for a in "$@"; do
  case "$a" in
    --log=*) log="${a#--log=}";;
    --pid-file=*) pidfile="${a#--pid-file=}";;
    --internal-pid-file=*) ipidfile="${a#--internal-pid-file=}";;
    --*) ;;
    *) [ -z "$verb" ] && verb=$a;;
  esac
done
for a in "$@"; do prev=$last; last=$a; done
echo "$verb $*" >> "$dir/calls"
fail() { printf '{"msg":"%s","level":"error"}' "$1" >> "$log"; exit 128; }
[ -f "$dir/hang-$verb" ] && exec sleep 1000
[ -f "$dir/die-$verb" ] && kill -9 $$
[ -f "$dir/slow-$verb" ] && sleep 1
case "$verb" in
  flags) printf '  -network value\n  -debug\n  -debug-log string\n' >&2;;
  create)
    setsid sleep 1000 </dev/null >/dev/null 2>&1 &
    [ -f "$dir/no-pid-file" ] || echo $! > "$pidfile"; echo $! > "$dir/$last.sandbox";;
  start)
    if [ -f "$dir/exit-at-start" ]; then kill -9 "$(cat "$dir/$last.sandbox")"; sleep 0.3; fi;;
  kill) kill "-$last" "$(cat "$dir/$prev.sandbox")" 2>/dev/null || fail "sandbox is not running";;
  delete) kill -9 "$(cat "$dir/$last.sandbox" 2>/dev/null)" 2>/dev/null; rm -f "$dir/$last.sandbox";;
  ps) if [ -f "$dir/exec-ran" ]; then echo '[1,5,4194301,9]'; else echo '[1,5,4194301]'; fi;;
  exec)
    [ -f "$dir/no-internal-pid" ] || echo 9 > "$ipidfile"
    touch "$dir/exec-ran"
    # A pid file that is a FIFO, written 2 s late: reading it blocks.
    if [ -f "$dir/slow-pid-file" ]; then
      rm -f "$pidfile"; mkfifo "$pidfile"; (sleep 2; echo $$ > "$pidfile") &
    else echo $$ > "$pidfile"; fi
    exec sleep 1000;;
esac
exit 0
"#;

/// Reaps every child of this (subreaper) process and reports the exit to
/// containerd-shim's monitor, where [`Reaper`] picks it up.
fn start_reaping() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            loop {
                use nix::sys::wait::{waitpid, WaitStatus};
                let (pid, code) = match waitpid(None, None) {
                    Ok(WaitStatus::Exited(p, c)) => (p, c),
                    Ok(WaitStatus::Signaled(p, s, _)) => (p, 128 + s as i32),
                    Ok(_) => continue,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let notify = containerd_shim::asynchronous::monitor::monitor_notify_by_pid(
                    pid.as_raw(),
                    code,
                );
                let _ = rt.block_on(notify);
            }
        });
    });
}

/// One service with its fake runsc, bundle directory and recorded events.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub svc: TaskService,
    pub events: UnboundedReceiver<(String, String)>,
    pub exit: Arc<ExitSignal>,
    seen: Vec<(String, String)>,
}

pub fn ctx() -> TtrpcContext {
    TtrpcContext {
        mh: Default::default(),
        metadata: Default::default(),
        timeout_nano: 0,
    }
}

impl Harness {
    /// `extra_toml` is appended to the runtime options file.
    pub async fn new(extra_toml: &str) -> Harness {
        start_reaping();
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("runsc");
        test_support::host::write_script(&fake, FAKE_RUNSC);
        let toml = format!(
            "binary_name = \"{}\"\nroot = \"{}\"\n{extra_toml}\n",
            fake.display(),
            dir.path().join("root").display()
        );
        std::fs::write(dir.path().join("runsc.toml"), toml).unwrap();
        let reaper = Reaper::start().await.unwrap();
        let (events, rx) = Events::recording("test");
        let exit = Arc::new(ExitSignal::default());
        let svc = TaskService::new(events, "test", exit.clone(), reaper, CleanupIn::ThisProcess);
        Harness {
            dir,
            svc,
            events: rx,
            exit,
            seen: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes the fake misbehave (`hang-create`, `slow-create`, `exit-at-start`...).
    pub fn set(&self, flag: &str) {
        std::fs::write(self.path(flag), "").unwrap();
    }

    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default()
    }

    /// A bundle whose rootfs has an executable `/bin/sh`; `args` is the
    /// process.
    pub fn bundle(&self, id: &str, args: &[&str]) -> PathBuf {
        let b = self.path(&format!("bundle-{id}"));
        let bin = b.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("sh"), "#!").unwrap();
        std::fs::set_permissions(bin.join("sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut spec = oci_spec::runtime::Spec::default();
        let mut process = spec.process().clone().unwrap();
        process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        process.set_terminal(Some(false));
        spec.set_process(Some(process));
        spec.set_mounts(Some(vec![]));
        spec.save(b.join("config.json")).unwrap();
        b
    }

    pub fn create_req(&self, id: &str, bundle: &Path) -> api::CreateTaskRequest {
        api::CreateTaskRequest {
            id: id.into(),
            bundle: bundle.to_string_lossy().into_owned(),
            options: Some(runtime_options(&self.path("runsc.toml"))).into(),
            ..Default::default()
        }
    }

    pub async fn create(&self, id: &str) -> Result<api::CreateTaskResponse, Code> {
        let b = self.bundle(id, &["sh"]);
        self.svc
            .create(&ctx(), self.create_req(id, &b))
            .await
            .map_err(code)
    }

    pub async fn start(&self, id: &str, exec_id: &str) -> Result<api::StartResponse, Code> {
        let req = api::StartRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        self.svc.start(&ctx(), req).await.map_err(code)
    }

    pub async fn kill(&self, id: &str, exec_id: &str, signal: u32) -> Result<(), Code> {
        let req = api::KillRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            signal,
            ..Default::default()
        };
        self.svc.kill(&ctx(), req).await.map(drop).map_err(code)
    }

    pub async fn wait(&self, id: &str) -> u32 {
        let req = api::WaitRequest {
            id: id.into(),
            ..Default::default()
        };
        let c = ctx();
        let w = tokio::time::timeout(Duration::from_secs(10), self.svc.wait(&c, req));
        w.await.unwrap().unwrap().exit_status
    }

    pub async fn delete(&self, id: &str) -> Result<api::DeleteResponse, Code> {
        let res = self.delete_answered(id).await;
        // A root's runsc delete runs in the background; let it finish, as
        // the shim does before it exits, so it cannot write into this
        // harness's directory while the directory is being removed.
        self.svc.finish_cleanups().await;
        res
    }

    /// Creates and starts `id`, SIGKILLs it and sees it exit 137.
    pub async fn run_and_kill(&self, id: &str) {
        self.create(id).await.unwrap();
        self.start(id, "").await.unwrap();
        self.kill(id, "", SIGKILL).await.unwrap();
        assert_eq!(self.wait(id).await, 137);
    }

    /// Delete, returning with its answer (the background cleanup may run on).
    pub async fn delete_answered(&self, id: &str) -> Result<api::DeleteResponse, Code> {
        let req = api::DeleteRequest {
            id: id.into(),
            ..Default::default()
        };
        self.svc.delete(&ctx(), req).await.map_err(code)
    }

    /// Topics published for container `id`, waiting until `last` is among them.
    pub async fn topics_until(&mut self, id: &str, last: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let topics: Vec<String> = self
                .seen
                .iter()
                .filter(|(_, e)| e.contains(&format!("container_id: \"{id}\"")))
                .map(|(t, _)| t.clone())
                .collect();
            if topics.iter().any(|t| t == last) || tokio::time::Instant::now() > deadline {
                return topics;
            }
            match tokio::time::timeout(Duration::from_millis(100), self.events.recv()).await {
                Ok(Some(ev)) => self.seen.push(ev),
                _ => continue,
            }
        }
    }
}

pub fn code(e: containerd_shim::protos::ttrpc::Error) -> Code {
    match e {
        containerd_shim::protos::ttrpc::Error::RpcStatus(s) => s.code(),
        other => panic!("not a status: {other:?}"),
    }
}

pub fn message(e: containerd_shim::protos::ttrpc::Error) -> String {
    match e {
        containerd_shim::protos::ttrpc::Error::RpcStatus(s) => s.message,
        other => panic!("not a status: {other:?}"),
    }
}

/// `runtimeoptions.v1.Options { config_path }` as containerd sends it.
pub fn runtime_options(path: &Path) -> Any {
    let p = path.to_string_lossy();
    let mut value = vec![0x12, p.len() as u8];
    value.extend_from_slice(p.as_bytes());
    Any {
        type_url: "runtimeoptions.v1.Options".into(),
        value,
        ..Default::default()
    }
}

/// An ExecProcessRequest of the default OCI process.
pub fn exec_req(id: &str, exec_id: &str) -> api::ExecProcessRequest {
    let spec = oci_spec::runtime::Spec::default()
        .process()
        .clone()
        .unwrap();
    api::ExecProcessRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        spec: Some(Any {
            value: serde_json::to_vec(&spec).unwrap(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}
