//! An agent-sandbox containerd service's workflows (memoh's
//! `internal/containerd` `DefaultService`, which drives containerd through
//! its Go client) run through containerd's gRPC API against our shim:
//! containers found by label, StartContainer with null IO, StopContainer's
//! TERM then KILL when its timeout passes, ExecTask with captured
//! stdout/stderr and the exit code, ExecTaskStreaming (stdin written then
//! closed, stdout and stderr as separate streams, Wait, Close),
//! CommitSnapshot of a stopped container and CreateContainerFromSnapshot,
//! a network namespace made for the test, and the timezone and resolv.conf
//! bind mounts.
//!
//! [`Agent`] makes, for each service method, the calls the Go client makes
//! (`NewTask` = the snapshot's mounts + Create; `Exec` with FIFOs the client
//! opened first; Wait before Start). Container records come from `ctr
//! containers create` (the record `NewContainer` writes).

mod exec;
mod lifecycle;
mod mounts;
mod snapshot;

use std::time::Duration;

use containerd_client::{
    services::v1::{
        containers_client::ContainersClient,
        snapshots::{snapshots_client::SnapshotsClient, MountsRequest},
        Container, CreateTaskRequest, DeleteContainerRequest, GetContainerRequest,
        ListContainersRequest, WaitRequest,
    },
    tonic::{Code, Status},
    types::v1::Status as TaskStatus,
};
use nix::sys::signal::Signal;
use tokio::{io::AsyncWriteExt, net::unix::pipe, task::JoinHandle};

use crate::support::{Client, Containerd, Event, EventLog, Fifos, Output, DEADLINE};

/// A name no other test of this run uses (container ids, snapshot names).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// How StopContainer ended.
#[derive(Debug)]
pub struct Stopped {
    /// The exit status Wait reported.
    pub exit_status: u32,
    /// The task's status when the timeout passed (then KILL was sent), or
    /// None when the signal alone stopped it.
    pub at_timeout: Option<TaskStatus>,
}

/// ExecTask's result with the streams it captured.
#[derive(Debug)]
pub struct ExecOutput {
    pub exit_code: u32,
    pub stdout: String,
    pub stderr: String,
}

/// The service: one containerd client.
pub struct Agent {
    pub client: Client,
}

impl Agent {
    pub async fn connect(c: &Containerd) -> Agent {
        Agent {
            client: Client::connect(c).await,
        }
    }

    fn containers(&self) -> ContainersClient<containerd_client::tonic::transport::Channel> {
        ContainersClient::new(self.client.channel.clone())
    }

    /// GetContainer.
    pub async fn container(&self, id: &str) -> Result<Container, Status> {
        let req = self.client.req(GetContainerRequest { id: id.into() });
        Ok(self
            .containers()
            .get(req)
            .await?
            .into_inner()
            .container
            .expect("container"))
    }

    /// ListContainers with containerd's filters (none: every record).
    async fn records(&self, filters: &[String]) -> Vec<Container> {
        let req = self.client.req(ListContainersRequest {
            filters: filters.to_vec(),
        });
        self.containers()
            .list(req)
            .await
            .unwrap_or_else(|e| panic!("list containers {filters:?}: {e:?}"))
            .into_inner()
            .containers
    }

    /// The ids ListContainers returns for containerd's `filters`, sorted.
    pub async fn list_containers(&self, filters: &[String]) -> Vec<String> {
        let mut ids: Vec<String> = self
            .records(filters)
            .await
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    }

    /// ListContainersByLabel as the service does it: every record, kept
    /// when it has label `key` (with `value`, unless empty); ids sorted.
    pub async fn list_by_label(&self, key: &str, value: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .records(&[])
            .await
            .into_iter()
            .filter(|c| {
                c.labels
                    .get(key)
                    .is_some_and(|v| value.is_empty() || v == value)
            })
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    }

    /// StartContainer with its default null IO (`cio.NullIO`: no stdio
    /// paths at all): the container's snapshot mounts as the rootfs,
    /// Create, Start. Returns the pid.
    pub async fn start_container(&self, id: &str) -> u32 {
        let c = self
            .container(id)
            .await
            .unwrap_or_else(|e| panic!("get {id}: {e:?}"));
        let mut snaps = SnapshotsClient::new(self.client.channel.clone());
        let rootfs = snaps
            .mounts(self.client.req(MountsRequest {
                snapshotter: c.snapshotter,
                key: c.snapshot_key,
            }))
            .await
            .unwrap_or_else(|e| panic!("mounts of {id}: {e:?}"))
            .into_inner()
            .mounts;
        let req = CreateTaskRequest {
            container_id: id.into(),
            rootfs,
            ..Default::default()
        };
        self.client
            .tasks
            .clone()
            .create(self.client.req(req))
            .await
            .unwrap_or_else(|e| panic!("create task {id}: {e:?}"));
        self.client.start(id, "").await
    }

    /// A Wait call in the background (the Go client's `Wait` channel).
    fn wait_in_background(&self, id: &str, exec_id: &str) -> JoinHandle<Result<u32, Status>> {
        let req = self.client.req(WaitRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        let mut tasks = self.client.tasks.clone();
        tokio::spawn(async move { Ok(tasks.wait(req).await?.into_inner().exit_status) })
    }

    /// StopContainer: `signal`, then Wait up to `timeout`; when it passes,
    /// KILL and the same Wait's status if `force`, else the Wait is
    /// abandoned and the task's status returned as the error (the service's
    /// ErrTaskStopTimeout).
    pub async fn stop_container(
        &self,
        id: &str,
        signal: Signal,
        timeout: Duration,
        force: bool,
    ) -> Result<Stopped, TaskStatus> {
        self.client.kill(id, "", signal).await;
        let mut wait = self.wait_in_background(id, "");
        if let Ok(done) = tokio::time::timeout(timeout, &mut wait).await {
            return Ok(Stopped {
                exit_status: done.unwrap().unwrap_or_else(|e| panic!("wait {id}: {e:?}")),
                at_timeout: None,
            });
        }
        let at_timeout = self.client.status(id, "").await.0;
        if !force {
            wait.abort();
            return Err(at_timeout);
        }
        self.client.kill(id, "", Signal::SIGKILL).await;
        let exit_status = tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("{id}: no exit after SIGKILL"))
            .unwrap()
            .unwrap_or_else(|e| panic!("wait {id}: {e:?}"));
        Ok(Stopped {
            exit_status,
            at_timeout: Some(at_timeout),
        })
    }

    /// StopContainer with KILL after `timeout`, then DeleteTask (the
    /// service's `safeStopTask` before a commit or a removal).
    pub async fn stop_and_delete_task(&self, id: &str, timeout: Duration) -> u32 {
        let stopped = self
            .stop_container(id, Signal::SIGTERM, timeout, true)
            .await
            .unwrap();
        let deleted = self.client.delete_task(id).await;
        assert_eq!(deleted, stopped.exit_status, "{id}");
        deleted
    }

    /// DeleteContainer without snapshot cleanup (the record only).
    pub async fn delete_container(&self, id: &str) {
        let req = self.client.req(DeleteContainerRequest { id: id.into() });
        self.containers()
            .delete(req)
            .await
            .unwrap_or_else(|e| panic!("delete container {id}: {e:?}"));
    }

    /// ExecTask: FIFOs for stdout and stderr read from before the Exec,
    /// Exec, Wait, Start, the exit status, both streams to their end,
    /// DeleteProcess.
    pub async fn exec_task(&self, id: &str, args: &[&str]) -> ExecOutput {
        let exec_id = unique("exec");
        let fifos = Fifos::new();
        let (out, err) = (fifos.stdout(), fifos.stderr());
        self.client.exec(id, &exec_id, args, &fifos).await;
        let wait = self.wait_in_background(id, &exec_id);
        self.client.start(id, &exec_id).await;
        let exit_code = tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("exec {args:?} in {id} never exited"))
            .unwrap()
            .unwrap_or_else(|e| panic!("wait exec {args:?} in {id}: {e:?}"));
        let (stdout, stderr) = (out.wait_eof().await, err.wait_eof().await);
        let deleted = self.client.delete_process(id, &exec_id).await;
        assert_eq!(deleted, exit_code, "{args:?}");
        ExecOutput {
            exit_code,
            stdout,
            stderr,
        }
    }

    /// ExecTaskStreaming: stdin, stdout and stderr FIFOs, Exec, Start; the
    /// session writes and reads them while the process runs.
    pub async fn exec_streaming(&self, id: &str, args: &[&str]) -> Session<'_> {
        let exec_id = unique("exec");
        let fifos = Fifos::with_stdin();
        let (stdout, stderr) = (fifos.stdout(), fifos.stderr());
        self.client.exec(id, &exec_id, args, &fifos).await;
        // The shim holds the read end once the Exec returned.
        let stdin = Some(fifos.stdin());
        self.client.start(id, &exec_id).await;
        Session {
            agent: self,
            id: id.into(),
            exec_id,
            stdin,
            stdout,
            stderr,
            _fifos: fifos,
        }
    }
}

/// The Go service's `ExecTaskSession`.
pub struct Session<'a> {
    agent: &'a Agent,
    id: String,
    pub exec_id: String,
    stdin: Option<pipe::Sender>,
    pub stdout: Output,
    pub stderr: Output,
    _fifos: Fifos,
}

impl Session<'_> {
    pub async fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(data).await.unwrap();
    }

    /// Closes the client's end of stdin: no CloseIO, as the service's
    /// `Stdin.Close()` (the process must still see EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait: the exit status.
    pub async fn wait(&self) -> u32 {
        self.agent.client.wait(&self.id, &self.exec_id).await
    }

    /// Close: the client's ends go, then DeleteProcess.
    pub async fn close(self) -> u32 {
        let Session {
            agent,
            id,
            exec_id,
            stdin,
            stdout,
            stderr,
            _fifos,
        } = self;
        drop((stdin, stdout, stderr));
        agent.client.delete_process(&id, &exec_id).await
    }
}

/// The `/tasks/exit` events of `id`'s init (not its execs), once there is one.
pub async fn init_exits(events: &EventLog, id: &str) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let exits: Vec<Event> = events
            .of(id)
            .into_iter()
            .filter(|e| e.topic == "/tasks/exit" && e.id == id)
            .collect();
        if !exits.is_empty() {
            return exits;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no /tasks/exit for {id}'s init; events: {:#?}",
            events.of(id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_not_found(e: &Status) -> bool {
    e.code() == Code::NotFound
}
