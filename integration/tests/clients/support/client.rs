//! [`Client`]: one gRPC channel to a private containerd and the task calls
//! a client makes, every request carrying its namespace.

use containerd_client::{
    services::v1::{
        containers_client::ContainersClient,
        snapshots::{snapshots_client::SnapshotsClient, MountsRequest},
        tasks_client::TasksClient,
        CloseIoRequest, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest,
        ExecProcessRequest, GetContainerRequest, GetRequest, KillRequest, ListPidsRequest,
        MetricsRequest, PauseTaskRequest, ResizePtyRequest, ResumeTaskRequest, StartRequest,
        UpdateTaskRequest, WaitRequest,
    },
    tonic::{transport::Channel, Request, Status},
    types::v1::{ProcessInfo, Status as TaskStatus},
};
use prost_types::Any;

use super::{Containerd, Fifos, DEADLINE};

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
