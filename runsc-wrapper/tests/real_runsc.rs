//! End-to-end tests against the real `/usr/bin/runsc` (0.0~20221219, ptrace).
//! They need root and never skip: a missing prerequisite is a failure.
#![allow(clippy::unwrap_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use oci_spec::runtime::{LinuxResources, Process, ProcessBuilder};
use runsc::{
    CheckpointOpts, CreateOpts, DeleteOpts, Error, EventsOpts, ExecOpts, GlobalOpts, KillOpts,
    LogFormat, RestoreOpts, Runsc, StartOpts, Status, Stdio, StdioSource, WaitOpts,
};
use tempfile::TempDir;
use test_support::bundle::{require_root_and_runsc, Bundle};

const RUNSC: &str = "/usr/bin/runsc";
const LOOP: &[&str] = &["sh", "-c", "while true; do sleep 1; done"];

/// Private root and log per test; force-deletes its containers on drop,
/// also when the test panicked.
struct Env {
    dir: TempDir,
    runsc: Runsc,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Env {
    fn new() -> Env {
        Env::with_network(true)
    }

    fn with_network(network_none: bool) -> Env {
        require_root_and_runsc();
        assert!(Path::new(RUNSC).is_file(), "{RUNSC} is missing");
        let dir = tempfile::tempdir().unwrap();
        let mut opts = GlobalOpts::new()
            .command(RUNSC)
            .root(dir.path().join("root"))
            .log(dir.path().join("log.json"))
            .log_format(LogFormat::Json)
            .pdeath_signal(nix::sys::signal::Signal::SIGKILL);
        if network_none {
            opts = opts.config("network", "none");
        }
        Env {
            runsc: opts.build(),
            dir,
            ids: Default::default(),
        }
    }

    /// A container id unique across concurrent test runs: runsc names an
    /// abstract socket after it, which is host-global.
    fn id(&self, tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "rwt-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            let _ = std::process::Command::new(RUNSC)
                .arg(format!("--root={}", self.path("root").display()))
                .args(["delete", "--force", id])
                .output();
        }
    }
}

fn process(args: &[&str]) -> Process {
    ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string()])
        .cwd("/")
        .build()
        .unwrap()
}

/// Runs `args` in the container, returning its stdout (via a file: exec's
/// stdio is handed to the sandbox, never a capture pipe).
async fn exec_output(env: &Env, id: &str, args: &[&str]) -> (i32, String) {
    let out = env.path(&format!("exec-{}.out", rand_suffix()));
    let file = fs::File::create(&out).unwrap();
    let opts = ExecOpts {
        stdio: Stdio {
            stdout: StdioSource::Fd(file.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let code = env.runsc.exec(id, &process(args), opts).await.unwrap();
    (code, fs::read_to_string(&out).unwrap())
}

fn rand_suffix() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn create_and_start(env: &Env, id: &str, bundle: &Bundle) {
    env.runsc
        .create(id, bundle.path(), CreateOpts::default())
        .await
        .unwrap();
    env.runsc.start(id, StartOpts::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle() {
    let env = Env::new();
    let r = &env.runsc;
    let bundle = Bundle::busybox(LOOP).unwrap();
    let id = env.id("life");
    let pid_file = env.path("init.pid");
    let opts = CreateOpts {
        pid_file: Some(pid_file.clone()),
        ..Default::default()
    };
    r.create(&id, bundle.path(), opts).await.unwrap();
    let sandbox_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(sandbox_pid > 0);
    assert_eq!(r.state(&id).await.unwrap().status, Status::Created);
    r.start(&id, StartOpts::default()).await.unwrap();

    let st = r.state(&id).await.unwrap();
    assert_eq!((st.status, st.pid), (Status::Running, sandbox_pid));
    assert_eq!(st.bundle, bundle.path());
    assert!(r.list().await.unwrap().iter().any(|c| c.id == id));
    assert!(r.ps(&id).await.unwrap().contains(&1));
    let top = r.top(&id).await.unwrap();
    assert_eq!(top.headers.last().map(String::as_str), Some("CMD"));
    assert!(!top.processes.is_empty());
    let stats = r.stats(&id).await.unwrap();
    assert!(stats.pids.current >= 1, "{stats:?}");
    assert!(stats.cpu.usage.total > 0);

    r.pause(&id).await.unwrap();
    assert_eq!(r.state(&id).await.unwrap().status, Status::Paused);
    r.resume(&id).await.unwrap();
    assert_eq!(r.state(&id).await.unwrap().status, Status::Running);

    let (host_pid, internal_pid) = (env.path("e.pid"), env.path("e-internal.pid"));
    let opts = ExecOpts {
        detach: true,
        pid_file: Some(host_pid.clone()),
        internal_pid_file: Some(internal_pid.clone()),
        ..Default::default()
    };
    let code = r
        .exec(&id, &process(&["sleep", "100"]), opts)
        .await
        .unwrap();
    assert_eq!(code, 0);
    let host: i32 = fs::read_to_string(&host_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let internal: i32 = fs::read_to_string(&internal_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(host > 0 && internal > 1, "host {host} internal {internal}");
    assert!(r.ps(&id).await.unwrap().contains(&internal));
    // The detached exec is waited on by a `runsc exec` child on the host.
    assert!(Path::new(&format!("/proc/{host}")).exists());

    let (code, _) = exec_output(&env, &id, &["sh", "-c", "exit 3"]).await;
    assert_eq!(code, 3);
    let (code, out) = exec_output(&env, &id, &["echo", "hello"]).await;
    assert_eq!((code, out.as_str()), (0, "hello\n"));

    let waiter = {
        let (r, id) = (r.clone(), id.clone());
        tokio::spawn(async move { r.wait(&id, WaitOpts::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.kill(&id, libc::SIGKILL, KillOpts::default())
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), 137);
    let st = r.state(&id).await.unwrap();
    assert_eq!(st.status, Status::Stopped);

    // What a shim sees when it signals a stopped sandbox.
    let err = r
        .kill(&id, libc::SIGKILL, KillOpts::default())
        .await
        .unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(err.to_string().contains("sandbox is not running"), "{err}");

    r.delete(&id, DeleteOpts::default()).await.unwrap();
    let err = r.state(&id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_and_restore_keep_state() {
    let env = Env::new();
    let r = &env.runsc;
    let bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /data/count; sleep 0.1; done",
    ])
    .unwrap();
    bundle
        .edit_spec(|spec| {
            spec["mounts"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "destination": "/data", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev"]
                }))
        })
        .unwrap();
    let id = env.id("ckpt");
    create_and_start(&env, &id, &bundle).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, before) = exec_output(&env, &id, &["cat", "/data/count"]).await;
    let before: u64 = before.trim().parse().unwrap();
    assert!(before > 0);

    let image = env.path("image");
    fs::create_dir_all(&image).unwrap();
    let opts = CheckpointOpts {
        image_path: image.clone(),
        leave_running: false,
    };
    r.checkpoint(&id, opts).await.unwrap();
    assert!(image.join("checkpoint.img").is_file());
    assert_eq!(r.state(&id).await.unwrap().status, Status::Stopped);

    let restored = env.id("rest");
    let opts = RestoreOpts {
        image_path: image,
        bundle: Some(bundle.path().to_path_buf()),
        detach: true,
        ..Default::default()
    };
    r.restore(&restored, opts).await.unwrap();
    assert_eq!(r.state(&restored).await.unwrap().status, Status::Running);
    let (code, after) = exec_output(&env, &restored, &["cat", "/data/count"]).await;
    assert_eq!(code, 0);
    let after: u64 = after.trim().parse().unwrap();
    assert!(after >= before, "before {before} after {after}");
    r.delete(&restored, DeleteOpts { force: true })
        .await
        .unwrap();
    r.delete(&id, DeleteOpts::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_exit_code() {
    let env = Env::new();
    let bundle = Bundle::busybox(&["sh", "-c", "exit 7"]).unwrap();
    let id = env.id("run");
    let code = env
        .runsc
        .run(&id, bundle.path(), CreateOpts::default())
        .await
        .unwrap();
    assert_eq!(code, 7);
    // `run` deletes the container itself.
    assert!(env.runsc.state(&id).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_unknown() {
    let env = Env::new();
    let id = env.id("ghost");
    env.runsc
        .delete(&id, DeleteOpts { force: true })
        .await
        .unwrap();
    let err = env
        .runsc
        .delete(&id, DeleteOpts::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.message().contains("file does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_runsc_text() {
    // A bundle without config.json: create fails in runsc itself.
    let env = Env::new();
    let empty = env.path("empty-bundle");
    fs::create_dir_all(&empty).unwrap();
    let id = env.id("nocfg");
    let err = env
        .runsc
        .create(&id, &empty, CreateOpts::default())
        .await
        .unwrap_err();
    let Error::Command {
        subcommand,
        status,
        log_error,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((subcommand.as_str(), *status), ("create", 128));
    assert!(
        log_error.as_deref().unwrap_or("").contains("config.json"),
        "{err}"
    );

    // Without --network=none in the host netns: runsc 20221219 accepts the
    // create and refuses at start.
    let env = Env::with_network(false);
    let bundle = Bundle::busybox(LOOP).unwrap();
    let id = env.id("net");
    env.runsc
        .create(&id, bundle.path(), CreateOpts::default())
        .await
        .unwrap();
    let err = env
        .runsc
        .start(&id, StartOpts::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("runsc start {id} failed: "))
            && text.contains("cannot run with network enabled in root network namespace")
            && text.ends_with("(exit status 128)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_is_unsupported() {
    let env = Env::new();
    assert!(!env.runsc.supports_update().await.unwrap());
    let err = env
        .runsc
        .update("anything", &LinuxResources::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(env.runsc.version().await.unwrap(), "0.0~20221219.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_and_drop() {
    let env = Env::new();
    let bundle = Bundle::busybox(LOOP).unwrap();
    let id = env.id("ev");
    create_and_start(&env, &id, &bundle).await;
    let opts = EventsOpts {
        interval: Duration::from_secs(1),
        stats: false,
    };
    let mut stream = env.runsc.events(&id, opts).await.unwrap();
    let pid = stream.pid();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no event within 10s")
        .expect("stream ended")
        .unwrap();
    assert_eq!((ev.kind.as_str(), ev.id.as_str()), ("stats", id.as_str()));
    assert!(ev.stats().unwrap().pids.current >= 1);
    drop(stream);
    let gone = async {
        while Path::new(&format!("/proc/{pid}")).exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("runsc events survived the drop");
    env.runsc
        .delete(&id, DeleteOpts { force: true })
        .await
        .unwrap();
}
