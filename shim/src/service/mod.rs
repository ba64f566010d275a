//! The containerd task service. Each ttrpc method is a thin adapter over a
//! `Service` method returning the crate's `Result`; the one error mapping
//! lives in `error.rs`.
//!
//! ttrpc drops a request's future when the client's deadline passes. Every
//! method that changes state therefore runs as a task of its own
//! (`detached`): it runs to completion whatever happens to the request,
//! and a Create whose client is gone is undone (containerd treats that
//! create as failed and never deletes what it made).
//!
//! - `create/`: Create as a staged transaction (plan, prepare, launch,
//!   register) with one rollback; undone when its client gave up.
//! - `lifecycle.rs`: Start and Delete of a container.
//! - `exec.rs`: Exec, and starting exec processes.
//! - `exit.rs`: what happens when a process exits: where its exit comes
//!   from, the one task that waits for it, the events that follow.
//! - `checkpoint.rs`: Checkpoint, leaving the task running or not.
//! - `control.rs`: Kill, Pause, Resume, Pids, CloseIO, ResizePty, Update,
//!   Stats, State, Wait, Connect, Shutdown.
//! - `io.rs`: a process's stdio, opened and handed to runsc.
//!
//! A process's states and transitions are [`crate::process`]'s.

mod checkpoint;
mod control;
mod create;
mod exec;
mod exit;
mod io;
mod lifecycle;

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use async_trait::async_trait;
use containerd_shim::{
    api,
    asynchronous::ExitSignal,
    protos::{shim_async::Task, ttrpc::r#async::TtrpcContext},
    TtrpcResult,
};

use crate::{
    cleanup::CleanupIn,
    container::{Container, OomLedger},
    error::{Error, Result},
    events::Events,
    reaper::Reaper,
};

/// How long output may keep flowing after a process exited (a grandchild may
/// hold the pipe) before the exit is reported anyway.
pub const COPY_AFTER_EXIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// State shared by all requests.
pub struct Service {
    containers: Mutex<HashMap<String, Arc<Container>>>,
    events: Events,
    namespace: String,
    exit: Arc<ExitSignal>,
    reaper: Reaper,
    /// runsc state cleanups still running after their Delete answered.
    cleanups: Mutex<tokio::task::JoinSet<()>>,
    /// OOM kills reported per sandbox.
    ooms: OomLedger,
    /// Creates under way (Shutdown must not exit under them; one that
    /// came while they ran undoes them as they end).
    inflight: create::InFlight,
    /// Where a sandbox's last cleanup runs.
    cleanup_in: CleanupIn,
    /// Set by a Shutdown that ends the shim: no new work is taken.
    shutting_down: AtomicBool,
    /// A Shutdown came while containers were left: the last Delete ends
    /// the shim. On task API v3 containerd sends Shutdown only for the
    /// pod's sandbox container, never for its members, so a sandbox
    /// deleted before its members would otherwise leave the shim running.
    shutdown_deferred: AtomicBool,
}

impl Service {
    fn containers(&self) -> MutexGuard<'_, HashMap<String, Arc<Container>>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    /// The monitor the shim's own helpers (not runsc) are spawned through.
    fn monitor(&self) -> Arc<dyn runsc::ProcessMonitor> {
        Arc::new(self.reaper.clone())
    }

    /// Refuses new work once the shim is shutting down.
    fn accepting(&self) -> Result<()> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::FailedPrecondition(
                "the shim is shutting down and takes no new work".into(),
            ));
        }
        Ok(())
    }
}

/// Runs `work` as a task of its own and waits for it: dropping the waiting
/// request does not stop the work.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work)
        .await
        .unwrap_or_else(|e| Err(Error::Other(format!("request task failed: {e}"))))
}

/// The ttrpc task service (`containerd.task.v2.Task`, and v3 by the same
/// methods).
#[derive(Clone)]
pub struct TaskService {
    svc: Arc<Service>,
}

impl TaskService {
    /// A service publishing to `events`, signalling `exit` on Shutdown,
    /// running sandboxes' last cleanups where `cleanup_in` says.
    pub fn new(
        events: Events,
        namespace: &str,
        exit: Arc<ExitSignal>,
        reaper: Reaper,
        cleanup_in: CleanupIn,
    ) -> Self {
        TaskService {
            svc: Arc::new(Service {
                containers: Mutex::new(HashMap::new()),
                events,
                namespace: namespace.to_string(),
                exit,
                reaper,
                cleanups: Mutex::new(tokio::task::JoinSet::new()),
                ooms: OomLedger::default(),
                inflight: create::InFlight::default(),
                cleanup_in,
                shutting_down: AtomicBool::new(false),
                shutdown_deferred: AtomicBool::new(false),
            }),
        }
    }

    /// Waits (bounded) for background cleanups, then for the events still
    /// queued for containerd; called before the shim exits.
    pub async fn finish_cleanups(&self) {
        let mut set =
            std::mem::take(&mut *self.svc.cleanups.lock().unwrap_or_else(|p| p.into_inner()));
        let all = async { while set.join_next().await.is_some() {} };
        // Past runsc's own delete deadline: a slow `runsc delete` (the
        // soak's hung call took 20 s) still ends, and the sandbox root and
        // cgroup after it are removed; with a 10 s bound the shim exited
        // first and left both. A cleanup normally takes milliseconds.
        let bound = runsc::Timeouts::default().get("delete").unwrap_or_default()
            + std::time::Duration::from_secs(10);
        if tokio::time::timeout(bound, all).await.is_err() {
            log::warn!("runsc cleanups did not finish in {bound:?}");
        }
        // The last container's TaskDelete is often still on its way.
        self.svc
            .events
            .flush(std::time::Duration::from_secs(5))
            .await;
    }
}

fn log_req(method: &str, id: &str, exec_id: &str) {
    log::debug!("{method} id={id} exec_id={exec_id}");
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        log_req("create", &req.id, "");
        Ok(self.svc.clone().create_detached(req).await?)
    }

    async fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        log_req("start", &req.id, &req.exec_id);
        Ok(detached(self.svc.clone().start(req)).await?)
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        log_req("delete", &req.id, &req.exec_id);
        let svc = self.svc.clone();
        let resp = detached(async move { svc.delete(req).await }).await?;
        self.svc.shutdown_if_deferred();
        Ok(resp)
    }

    async fn exec(
        &self,
        _ctx: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("exec", &req.id, &req.exec_id);
        let svc = self.svc.clone();
        Ok(detached(async move { svc.exec(req).await }).await?)
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        log_req("kill", &req.id, &req.exec_id);
        Ok(detached(self.svc.clone().kill(req)).await?)
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        log_req("pause", &req.id, "");
        let svc = self.svc.clone();
        Ok(detached(async move { svc.pause(req).await }).await?)
    }

    async fn resume(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResumeRequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("resume", &req.id, "");
        let svc = self.svc.clone();
        Ok(detached(async move { svc.resume(req).await }).await?)
    }

    async fn pids(
        &self,
        _ctx: &TtrpcContext,
        req: api::PidsRequest,
    ) -> TtrpcResult<api::PidsResponse> {
        log_req("pids", &req.id, "");
        Ok(self.svc.pids(req).await?)
    }

    async fn close_io(
        &self,
        _ctx: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("close_io", &req.id, &req.exec_id);
        Ok(self.svc.close_io(req)?)
    }

    async fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("resize_pty", &req.id, &req.exec_id);
        Ok(self.svc.resize_pty(req)?)
    }

    async fn update(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("update", &req.id, "");
        let svc = self.svc.clone();
        Ok(detached(async move { svc.update(req).await }).await?)
    }

    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("checkpoint", &req.id, "");
        Ok(detached(self.svc.clone().checkpoint(req)).await?)
    }

    async fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        log_req("stats", &req.id, "");
        Ok(self.svc.stats(req).await?)
    }

    async fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        log_req("state", &req.id, &req.exec_id);
        Ok(self.svc.state(req)?)
    }

    async fn wait(
        &self,
        _ctx: &TtrpcContext,
        req: api::WaitRequest,
    ) -> TtrpcResult<api::WaitResponse> {
        log_req("wait", &req.id, &req.exec_id);
        Ok(self.svc.wait(req).await?)
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        log_req("connect", &req.id, "");
        Ok(self.svc.connect(req))
    }

    async fn shutdown(
        &self,
        _ctx: &TtrpcContext,
        req: api::ShutdownRequest,
    ) -> TtrpcResult<api::Empty> {
        log_req("shutdown", &req.id, "");
        self.svc.shutdown();
        Ok(api::Empty::new())
    }
}
