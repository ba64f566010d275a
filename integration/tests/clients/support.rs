//! gRPC plumbing shared by the client tier: what a program that drives
//! containerd's API itself (Docker's libcontainerd, an agent service) does,
//! without `ctr` in between.
//!
//! - [`rt`]: a multi-threaded tokio runtime, so FIFO readers and event
//!   subscriptions make progress while a test waits on something else.
//! - [`Client`]: one gRPC channel to a private [`Containerd`], every request
//!   carrying its namespace ([`Client::req`]), and the task calls a client
//!   makes (create with its own FIFOs, start, exec, kill, wait, pids, ...).
//! - [`create_container`]: the container record, made with `ctr containers
//!   create` (image, snapshot, spec and runtime in one step).
//! - [`Fifos`] and [`Output`]: stdio FIFOs in a temporary directory, as the
//!   client creates them (`mkfifo`), and a reader collecting one of them.
//! - [`EventLog`]: an `Events.Subscribe` stream collected in the background,
//!   decoded into [`Event`]s (topic, container, exec id, pid, exit status).
//! - [`Stats`], [`ProcessDetails`]: decoders for the `Any` payloads of
//!   `Metrics` (cgroups v1 or v2) and `ListPids` (runc's ProcessDetails).
//!
//! Every wait here has a deadline ([`DEADLINE`]) and panics with what it saw
//! when it passes; nothing here asserts on how long something took.
// Shared by the tier's modules; none uses every helper.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use containerd_client::{
    events::{
        TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOom, TaskPaused,
        TaskResumed, TaskStart,
    },
    services::v1::{
        containers_client::ContainersClient,
        events_client::EventsClient,
        snapshots::{snapshots_client::SnapshotsClient, MountsRequest},
        tasks_client::TasksClient,
        CloseIoRequest, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest,
        ExecProcessRequest, GetContainerRequest, GetRequest, KillRequest, ListPidsRequest,
        MetricsRequest, PauseTaskRequest, PublishRequest, ResizePtyRequest, ResumeTaskRequest,
        StartRequest, SubscribeRequest, UpdateTaskRequest, WaitRequest,
    },
    tonic::{transport::Channel, Request, Status},
    types::v1::{ProcessInfo, Status as TaskStatus},
};
use prost::Message;
use prost_types::Any;
use tokio::{io::AsyncReadExt, sync::watch, task::JoinHandle};

pub use test_support::containerd::{Containerd, OutputExt, RUNTIME};
pub use test_support::image::IMAGE_REF;

/// How long any wait in this tier may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A runtime with two workers: background readers keep reading while the
/// test's own future blocks on a `ctr` call.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `ctr containers create --runtime io.containerd.runsc.v1 <extra...>
/// busybox <id> <cmd...>`: the container record (spec, snapshot, runtime)
/// a client then creates a task for. `extra` takes `ctr`'s flags, e.g.
/// `--label k=v`, `--memory-limit N`, `-t`, `--env K=V`.
pub fn create_container(c: &Containerd, id: &str, extra: &[&str], cmd: &[&str]) {
    let mut args = vec!["containers", "create", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.push(IMAGE_REF);
    args.push(id);
    // Without `--`, ctr 1.6 takes a `-c` of the command for its `--config`;
    // later ctr versions stop at the id and would run `--` itself.
    if ctr_reorders_flags(c) {
        args.push("--");
    }
    args.extend_from_slice(cmd);
    c.ctr_ok(&args);
}

/// Whether this `ctr` parses flags after positional arguments (1.6's
/// urfave/cli v1 does; 1.7 and 2.x stop at the first argument).
fn ctr_reorders_flags(c: &Containerd) -> bool {
    static REORDERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REORDERS.get_or_init(|| {
        let v = c.ctr_ok(&["--version"]).out();
        v.contains(" v1.6.") || v.contains(" 1.6.")
    })
}

/// The stdio FIFOs of one process, made by the client in a directory of its
/// own (as Docker's `cio.NewFIFOSetInDir`). Paths are what the task
/// requests carry; an absent stream is an empty path (`/dev/null`).
pub struct Fifos {
    dir: tempfile::TempDir,
    /// stdin FIFO, when the process gets input.
    pub stdin: Option<PathBuf>,
    /// stdout FIFO (the terminal's output with `terminal`).
    pub stdout: PathBuf,
    /// stderr FIFO; never with a terminal (the pty merges both).
    pub stderr: Option<PathBuf>,
    /// Whether the process gets a pty.
    pub terminal: bool,
}

impl Fifos {
    /// stdout and stderr FIFOs, no stdin, no terminal.
    pub fn new() -> Fifos {
        Fifos::make(false, true, false)
    }

    /// stdin and stdout FIFOs with a terminal (`docker run -it`).
    pub fn tty() -> Fifos {
        Fifos::make(true, false, true)
    }

    /// stdin, stdout and stderr FIFOs, no terminal (`docker run -i`).
    pub fn with_stdin() -> Fifos {
        Fifos::make(true, true, false)
    }

    fn make(stdin: bool, stderr: bool, terminal: bool) -> Fifos {
        let dir = tempfile::Builder::new()
            .prefix("client-fifos-")
            .tempdir()
            .unwrap();
        let fifo = |name: &str| {
            let p = dir.path().join(name);
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o700)).unwrap();
            p
        };
        Fifos {
            stdin: stdin.then(|| fifo("stdin")),
            stdout: fifo("stdout"),
            stderr: stderr.then(|| fifo("stderr")),
            terminal,
            dir,
        }
    }

    /// The directory holding the FIFOs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(p: &Option<PathBuf>) -> String {
        p.as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Starts reading stdout (call before the task or exec is created, as
    /// Docker does; the reader waits for the shim to open the FIFO).
    pub fn stdout(&self) -> Output {
        Output::open(&self.stdout)
    }

    /// Starts reading stderr.
    pub fn stderr(&self) -> Output {
        Output::open(self.stderr.as_ref().expect("no stderr fifo"))
    }

    /// Opens stdin for writing. The shim must have opened its end (after
    /// Create or Exec): a FIFO without a reader cannot be opened here.
    pub fn stdin(&self) -> tokio::net::unix::pipe::Sender {
        let p = self.stdin.as_ref().expect("no stdin fifo");
        tokio::net::unix::pipe::OpenOptions::new()
            .open_sender(p)
            .unwrap_or_else(|e| panic!("open {} for writing: {e}", p.display()))
    }
}

/// A background reader of one output FIFO: every byte it read, and whether
/// it saw EOF (the shim closes its ends once the process's output is drained).
pub struct Output {
    path: PathBuf,
    seen: watch::Receiver<(Vec<u8>, bool)>,
    task: JoinHandle<()>,
}

impl Output {
    /// Opens `path` for reading (never blocks: a FIFO no writer has opened
    /// yet simply has nothing to read) and reads it in the background.
    pub fn open(path: &Path) -> Output {
        let mut rx = tokio::net::unix::pipe::OpenOptions::new()
            .open_receiver(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let (tx, seen) = watch::channel((Vec::new(), false));
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        tx.send_modify(|(_, eof)| *eof = true);
                        return;
                    }
                    Ok(n) => tx.send_modify(|(data, _)| data.extend_from_slice(&buf[..n])),
                }
            }
        });
        Output {
            path: path.to_path_buf(),
            seen,
            task,
        }
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.borrow().0).into_owned()
    }

    /// Waits until the text read contains `needle`; returns all of it.
    pub async fn wait_for(&self, needle: &str) -> String {
        self.wait_until(|t, _| t.contains(needle), &format!("{needle:?}"))
            .await
    }

    /// Waits until `f(text, eof)` holds; returns the text.
    pub async fn wait_until(&self, f: impl Fn(&str, bool) -> bool, what: &str) -> String {
        let mut seen = self.seen.clone();
        let got = tokio::time::timeout(
            DEADLINE,
            seen.wait_for(|(data, eof)| f(&String::from_utf8_lossy(data), *eof)),
        )
        .await;
        match got {
            Ok(Ok(v)) => String::from_utf8_lossy(&v.0).into_owned(),
            _ => panic!(
                "{}: {what} never seen; read so far: {:?}",
                self.path.display(),
                self.text()
            ),
        }
    }

    /// Waits for EOF; returns everything read.
    pub async fn wait_eof(&self) -> String {
        self.wait_until(|_, eof| eof, "EOF").await
    }

    /// Closes the reader (the client goes away); what it read is returned.
    pub async fn close(mut self) -> String {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.text()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One containerd connection with the test's namespace.
#[derive(Clone)]
pub struct Client {
    /// The gRPC channel (clone it for other service clients).
    pub channel: Channel,
    /// The Tasks service.
    pub tasks: TasksClient<Channel>,
    namespace: String,
}

impl Client {
    /// Connects to `c`'s gRPC socket (as `containerd.New(address)` does).
    pub async fn connect(c: &Containerd) -> Client {
        let channel = containerd_client::connect(c.socket())
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", c.socket().display()));
        Client {
            tasks: TasksClient::new(channel.clone()),
            channel,
            namespace: c.namespace().to_string(),
        }
    }

    /// The namespace requests carry.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `msg` as a request in the client's namespace (the
    /// `containerd-namespace` metadata every containerd call needs).
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut()
            .insert("containerd-namespace", self.namespace.parse().unwrap());
        req
    }

    /// The container record's OCI spec (JSON).
    pub async fn spec(&self, id: &str) -> serde_json::Value {
        let mut containers = ContainersClient::new(self.channel.clone());
        let ctr = containers
            .get(self.req(GetContainerRequest { id: id.into() }))
            .await
            .unwrap_or_else(|e| panic!("get container {id}: {e:?}"))
            .into_inner()
            .container
            .expect("container");
        serde_json::from_slice(&ctr.spec.expect("spec").value).unwrap()
    }

    /// Creates the task of container `id` with stdio `io`, the rootfs
    /// mounts from the container's snapshot (as the Go client's `NewTask`).
    /// Returns the pid Create reports.
    pub async fn create_task(&self, id: &str, io: &Fifos) -> u32 {
        self.try_create_task(id, io)
            .await
            .unwrap_or_else(|e| panic!("create task {id}: {e:?}"))
    }

    /// [`Client::create_task`], returning the error.
    pub async fn try_create_task(&self, id: &str, io: &Fifos) -> Result<u32, Status> {
        let mut containers = ContainersClient::new(self.channel.clone());
        let ctr = containers
            .get(self.req(GetContainerRequest { id: id.into() }))
            .await?
            .into_inner()
            .container
            .expect("container");
        let mut snaps = SnapshotsClient::new(self.channel.clone());
        let rootfs = snaps
            .mounts(self.req(MountsRequest {
                snapshotter: ctr.snapshotter,
                key: ctr.snapshot_key,
            }))
            .await?
            .into_inner()
            .mounts;
        let req = CreateTaskRequest {
            container_id: id.into(),
            rootfs,
            stdin: Fifos::path(&io.stdin),
            stdout: io.stdout.to_string_lossy().into_owned(),
            stderr: Fifos::path(&io.stderr),
            terminal: io.terminal,
            ..Default::default()
        };
        Ok(self
            .tasks
            .clone()
            .create(self.req(req))
            .await?
            .into_inner()
            .pid)
    }

    /// Starts the init (`exec_id` "") or an exec; returns its pid.
    pub async fn start(&self, id: &str, exec_id: &str) -> u32 {
        self.try_start(id, exec_id)
            .await
            .unwrap_or_else(|e| panic!("start {id}/{exec_id:?}: {e:?}"))
    }

    /// [`Client::start`], returning the error.
    pub async fn try_start(&self, id: &str, exec_id: &str) -> Result<u32, Status> {
        let req = StartRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        let r = self.tasks.clone().start(self.req(req)).await?;
        Ok(r.into_inner().pid)
    }

    /// Adds exec `exec_id` running `args` with stdio `io`: the process is
    /// the container's own (env, cwd, user) with other args, as Docker's
    /// `AddProcess` builds it.
    pub async fn exec(&self, id: &str, exec_id: &str, args: &[&str], io: &Fifos) {
        let mut process = self.spec(id).await["process"].clone();
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(io.terminal);
        self.exec_process(id, exec_id, process, io).await;
    }

    /// Adds exec `exec_id` running `process` (an OCI process spec, as JSON,
    /// sent as the client wrote it) with stdio `io`.
    pub async fn exec_process(
        &self,
        id: &str,
        exec_id: &str,
        process: serde_json::Value,
        io: &Fifos,
    ) {
        let req = ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdin: Fifos::path(&io.stdin),
            stdout: io.stdout.to_string_lossy().into_owned(),
            stderr: Fifos::path(&io.stderr),
            terminal: io.terminal,
            spec: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: serde_json::to_vec(&process).unwrap(),
            }),
        };
        self.tasks
            .clone()
            .exec(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("exec {id}/{exec_id}: {e:?}"));
    }

    /// Sends `signal` to the init (`exec_id` "") or an exec.
    pub async fn kill(&self, id: &str, exec_id: &str, signal: nix::sys::signal::Signal) {
        self.try_kill(id, exec_id, signal)
            .await
            .unwrap_or_else(|e| panic!("kill {id}/{exec_id:?} {signal}: {e:?}"));
    }

    /// [`Client::kill`], returning the error.
    pub async fn try_kill(
        &self,
        id: &str,
        exec_id: &str,
        signal: nix::sys::signal::Signal,
    ) -> Result<(), Status> {
        let req = KillRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal: signal as u32,
            all: false,
        };
        self.tasks.clone().kill(self.req(req)).await?;
        Ok(())
    }

    /// Waits for the init or an exec to exit; returns its exit status.
    pub async fn wait(&self, id: &str, exec_id: &str) -> u32 {
        let req = WaitRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        tokio::time::timeout(DEADLINE, self.tasks.clone().wait(self.req(req)))
            .await
            .unwrap_or_else(|_| panic!("wait {id}/{exec_id:?}: no exit"))
            .unwrap_or_else(|e| panic!("wait {id}/{exec_id:?}: {e:?}"))
            .into_inner()
            .exit_status
    }

    /// Status and pid of the init or an exec.
    pub async fn status(&self, id: &str, exec_id: &str) -> (TaskStatus, u32) {
        let req = GetRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        let p = self
            .tasks
            .clone()
            .get(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("get {id}/{exec_id:?}: {e:?}"))
            .into_inner()
            .process
            .expect("process");
        (
            TaskStatus::try_from(p.status).unwrap_or(TaskStatus::Unknown),
            p.pid,
        )
    }

    /// Closes the process's stdin (CloseIO).
    pub async fn close_stdin(&self, id: &str, exec_id: &str) {
        let req = CloseIoRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdin: true,
        };
        self.tasks
            .clone()
            .close_io(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("close stdin of {id}/{exec_id:?}: {e:?}"));
    }

    /// Resizes the terminal of the init or an exec.
    pub async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) {
        let req = ResizePtyRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            width,
            height,
        };
        self.tasks
            .clone()
            .resize_pty(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("resize {id}/{exec_id:?}: {e:?}"));
    }

    /// Pauses the task.
    pub async fn pause(&self, id: &str) {
        let req = PauseTaskRequest {
            container_id: id.into(),
        };
        self.tasks
            .clone()
            .pause(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("pause {id}: {e:?}"));
    }

    /// Resumes the task.
    pub async fn resume(&self, id: &str) {
        let req = ResumeTaskRequest {
            container_id: id.into(),
        };
        self.tasks
            .clone()
            .resume(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("resume {id}: {e:?}"));
    }

    /// ListPids: the container's processes (Docker's `GetPidsForContainer`
    /// and `Summary`).
    pub async fn pids(&self, id: &str) -> Vec<ProcessInfo> {
        let req = ListPidsRequest {
            container_id: id.into(),
        };
        self.tasks
            .clone()
            .list_pids(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("list pids of {id}: {e:?}"))
            .into_inner()
            .processes
    }

    /// Metrics of task `id` (the `Any` payload; see [`Stats::decode`]).
    pub async fn metrics(&self, id: &str) -> Any {
        let req = MetricsRequest {
            filters: vec![format!("id=={id}")],
        };
        let mut m = self
            .tasks
            .clone()
            .metrics(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("metrics of {id}: {e:?}"))
            .into_inner()
            .metrics;
        assert_eq!(m.len(), 1, "metrics for {id}: {m:?}");
        let m = m.remove(0);
        assert_eq!(m.id, id);
        m.data.expect("metrics data")
    }

    /// Update with OCI `LinuxResources` (JSON), as Docker's `UpdateResources`.
    pub async fn update(&self, id: &str, resources: serde_json::Value) -> Result<(), Status> {
        let req = UpdateTaskRequest {
            container_id: id.into(),
            resources: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: serde_json::to_vec(&resources).unwrap(),
            }),
            ..Default::default()
        };
        self.tasks.clone().update(self.req(req)).await?;
        Ok(())
    }

    /// Deletes an exited exec; returns its exit status.
    pub async fn delete_process(&self, id: &str, exec_id: &str) -> u32 {
        let req = DeleteProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        self.tasks
            .clone()
            .delete_process(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("delete {id}/{exec_id}: {e:?}"))
            .into_inner()
            .exit_status
    }

    /// Deletes the stopped task; returns its exit status.
    pub async fn delete_task(&self, id: &str) -> u32 {
        let req = DeleteTaskRequest {
            container_id: id.into(),
        };
        self.tasks
            .clone()
            .delete(self.req(req))
            .await
            .unwrap_or_else(|e| panic!("delete task {id}: {e:?}"))
            .into_inner()
            .exit_status
    }
}

/// One task event, decoded from an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `/tasks/create`, `/tasks/exit`, ...
    pub topic: String,
    /// The container.
    pub container_id: String,
    /// The exec id (exec-added/started), the exited process's id (exit: the
    /// container id for the init, else the exec id), or "".
    pub id: String,
    /// The pid the event carries, or 0.
    pub pid: u32,
    /// Exit status (exit and delete), or 0.
    pub exit_status: u32,
}

/// Topic of the event that tells an [`EventLog`] its subscription is live.
const PROBE_TOPIC: &str = "/clients-test/probe";

impl Event {
    fn decode(topic: &str, any: &Any) -> Option<Event> {
        let v = any.value.as_slice();
        let mut e = Event {
            topic: topic.to_string(),
            container_id: String::new(),
            id: String::new(),
            pid: 0,
            exit_status: 0,
        };
        match topic {
            "/tasks/create" => {
                let m = TaskCreate::decode(v).ok()?;
                (e.container_id, e.pid) = (m.container_id, m.pid);
            }
            "/tasks/start" => {
                let m = TaskStart::decode(v).ok()?;
                (e.container_id, e.pid) = (m.container_id, m.pid);
            }
            "/tasks/exit" => {
                let m = TaskExit::decode(v).ok()?;
                (e.container_id, e.id, e.pid, e.exit_status) =
                    (m.container_id, m.id, m.pid, m.exit_status);
            }
            "/tasks/delete" => {
                let m = TaskDelete::decode(v).ok()?;
                (e.container_id, e.id, e.pid, e.exit_status) =
                    (m.container_id, m.id, m.pid, m.exit_status);
            }
            "/tasks/oom" => e.container_id = TaskOom::decode(v).ok()?.container_id,
            "/tasks/exec-added" => {
                let m = TaskExecAdded::decode(v).ok()?;
                (e.container_id, e.id) = (m.container_id, m.exec_id);
            }
            "/tasks/exec-started" => {
                let m = TaskExecStarted::decode(v).ok()?;
                (e.container_id, e.id, e.pid) = (m.container_id, m.exec_id, m.pid);
            }
            "/tasks/paused" => e.container_id = TaskPaused::decode(v).ok()?.container_id,
            "/tasks/resumed" => e.container_id = TaskResumed::decode(v).ok()?.container_id,
            PROBE_TOPIC => {}
            _ => return None,
        }
        Some(e)
    }
}

/// The task events of the client's namespace, collected from an
/// `Events.Subscribe` stream in the background (as Docker's
/// `processEventStream`).
pub struct EventLog {
    seen: watch::Receiver<Vec<Event>>,
    task: JoinHandle<()>,
}

impl EventLog {
    /// Subscribes and returns once the subscription is live: it publishes
    /// probe events until one comes back, so no later event is missed.
    pub async fn subscribe(client: &Client) -> EventLog {
        let (tx, seen) = watch::channel(Vec::new());
        let mut events = EventsClient::new(client.channel.clone());
        let req = client.req(SubscribeRequest {
            filters: vec![format!("namespace=={}", client.namespace())],
        });
        let task = tokio::spawn(async move {
            // containerd sends the response headers with the first event.
            let Ok(stream) = events.subscribe(req).await else {
                return;
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(env)) = stream.message().await {
                let Some(any) = env.event.as_ref() else {
                    continue;
                };
                if let Some(e) = Event::decode(&env.topic, any) {
                    tx.send_modify(|v| v.push(e));
                }
            }
        });
        let log = EventLog { seen, task };
        let mut publisher = EventsClient::new(client.channel.clone());
        let live = tokio::time::timeout(DEADLINE, async {
            loop {
                let probe = PublishRequest {
                    topic: PROBE_TOPIC.into(),
                    event: Some(Any {
                        type_url: "containerd.events.TaskOOM".into(),
                        value: TaskOom {
                            container_id: "probe".into(),
                        }
                        .encode_to_vec(),
                    }),
                };
                publisher
                    .publish(client.req(probe))
                    .await
                    .unwrap_or_else(|e| panic!("publish probe: {e:?}"));
                let mut seen = log.seen.clone();
                let probed = tokio::time::timeout(
                    Duration::from_millis(200),
                    seen.wait_for(|v| v.iter().any(|e| e.topic == PROBE_TOPIC)),
                )
                .await;
                if matches!(probed, Ok(Ok(_))) {
                    return;
                }
            }
        })
        .await;
        assert!(live.is_ok(), "event subscription never became live");
        log
    }

    /// The events of container `id` so far, in order.
    pub fn of(&self, id: &str) -> Vec<Event> {
        self.seen
            .borrow()
            .iter()
            .filter(|e| e.container_id == id)
            .cloned()
            .collect()
    }

    /// The topics of container `id` so far, in order.
    pub fn topics(&self, id: &str) -> Vec<String> {
        self.of(id).into_iter().map(|e| e.topic).collect()
    }

    /// Waits until `id` has had `n` events with `topic`; returns `id`'s events.
    pub async fn wait_for(&self, id: &str, topic: &str, n: usize) -> Vec<Event> {
        let mut seen = self.seen.clone();
        let got = tokio::time::timeout(
            DEADLINE,
            seen.wait_for(|v| {
                v.iter()
                    .filter(|e| e.container_id == id && e.topic == topic)
                    .count()
                    >= n
            }),
        )
        .await;
        assert!(
            matches!(got, Ok(Ok(_))),
            "{topic} (x{n}) for {id} never seen; events: {:#?}",
            self.of(id)
        );
        self.of(id)
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a client reads from `Metrics`, whatever the host's cgroup mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `io.containerd.cgroups.v1.Metrics` or `...v2.Metrics`.
    pub type_url: String,
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, in bytes.
    pub memory_usage: u64,
    /// Memory limit, in bytes (a huge number when unlimited on cgroup v1).
    pub memory_limit: u64,
    /// Processes (pids controller), or 0.
    pub pids: u64,
}

impl Stats {
    /// Decodes a `Metrics` payload.
    pub fn decode(any: &Any) -> Stats {
        let v = any.value.as_slice();
        let mut s = Stats {
            type_url: any.type_url.clone(),
            ..Default::default()
        };
        if any.type_url.ends_with("cgroups.v1.Metrics") {
            let m = cg1::Metrics::decode(v).unwrap();
            s.cpu_ns = m.cpu.and_then(|c| c.usage).map_or(0, |u| u.total);
            let usage = m.memory.and_then(|m| m.usage).unwrap_or_default();
            (s.memory_usage, s.memory_limit) = (usage.usage, usage.limit);
            s.pids = m.pids.map_or(0, |p| p.current);
        } else if any.type_url.ends_with("cgroups.v2.Metrics") {
            let m = cg2::Metrics::decode(v).unwrap();
            s.cpu_ns = m.cpu.map_or(0, |c| c.usage_usec * 1000);
            let mem = m.memory.unwrap_or_default();
            (s.memory_usage, s.memory_limit) = (mem.usage, mem.usage_limit);
            s.pids = m.pids.map_or(0, |p| p.current);
        } else {
            panic!("unknown metrics type {:?}", any.type_url);
        }
        s
    }
}

/// The fields of `io.containerd.cgroups.v1.Metrics` a client reads.
mod cg1 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metrics {
        #[prost(message, optional, tag = "2")]
        pub pids: Option<super::PidsStat>,
        #[prost(message, optional, tag = "3")]
        pub cpu: Option<CpuStat>,
        #[prost(message, optional, tag = "4")]
        pub memory: Option<MemoryStat>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuStat {
        #[prost(message, optional, tag = "1")]
        pub usage: Option<CpuUsage>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuUsage {
        #[prost(uint64, tag = "1")]
        pub total: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryStat {
        #[prost(message, optional, tag = "33")]
        pub usage: Option<MemoryEntry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryEntry {
        #[prost(uint64, tag = "1")]
        pub limit: u64,
        #[prost(uint64, tag = "2")]
        pub usage: u64,
    }
}

/// The fields of `io.containerd.cgroups.v2.Metrics` a client reads.
mod cg2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metrics {
        #[prost(message, optional, tag = "1")]
        pub pids: Option<super::PidsStat>,
        #[prost(message, optional, tag = "2")]
        pub cpu: Option<CpuStat>,
        #[prost(message, optional, tag = "4")]
        pub memory: Option<MemoryStat>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuStat {
        #[prost(uint64, tag = "1")]
        pub usage_usec: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryStat {
        #[prost(uint64, tag = "32")]
        pub usage: u64,
        #[prost(uint64, tag = "33")]
        pub usage_limit: u64,
    }
}

/// `PidsStat` (the same in cgroups v1 and v2 metrics).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PidsStat {
    /// Processes now.
    #[prost(uint64, tag = "1")]
    pub current: u64,
    /// The pids limit.
    #[prost(uint64, tag = "2")]
    pub limit: u64,
}

/// `containerd.runc.v1.ProcessDetails`, the `info` of a `ListPids` entry:
/// which exec a pid is (Docker's `Summary` shows it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDetails {
    /// The exec id, or "" for a process that is no exec.
    #[prost(string, tag = "1")]
    pub exec_id: String,
}

impl ProcessDetails {
    /// The exec id a `ListPids` entry names, if any.
    pub fn of(p: &ProcessInfo) -> Option<String> {
        let info = p.info.as_ref()?;
        assert!(
            info.type_url.ends_with("ProcessDetails"),
            "ListPids info of type {:?}",
            info.type_url
        );
        Some(
            ProcessDetails::decode(info.value.as_slice())
                .unwrap()
                .exec_id,
        )
    }
}
