//! What happens when a process exits, in one place: where each process's
//! exit comes from ([`ExitSource`]), the one task that waits for it
//! ([`Service::supervise`]), and what follows ([`Service::process_exited`]):
//! a checkpoint's parked exit kept, output drained, an OOM kill told
//! apart, the exit recorded, then TaskOOM and TaskExit published in the
//! process's event order.

use std::sync::Arc;

use runsc::{control::Sandbox, ExitReceiver, WaitOpts};
use tokio::task::JoinHandle;

use super::{Service, COPY_AFTER_EXIT_TIMEOUT};

/// How long a process whose wait failed waits for its sandbox's exit.
const SANDBOX_EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
use crate::{
    container::Container,
    convert,
    events::{TaskExit, TaskOOM},
    process::{exit_status, Process, Status},
};

/// Where a process's exit comes from.
pub(super) enum ExitSource {
    /// A host process the reaper claimed: a sandbox (created or restored),
    /// or the waiter of `runsc exec --detach`.
    Reaped(ExitReceiver),
    /// A pod member's init, which has no host process: `runsc wait`.
    RunscWait,
    /// An attached `runsc exec`, whose call ends with the process.
    RunscExec(JoinHandle<runsc::Result<i32>>),
    /// An exec started over the control socket: `WaitPID` on its pid there.
    InSandbox(Sandbox, i32),
    /// Known already: a created container torn down by Kill, or an exit
    /// parked during a checkpoint and released.
    Known(u32),
}

impl ExitSource {
    /// Waits for the exit status.
    async fn status(self, c: &Container, p: &Process) -> u32 {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            log::warn!("{what} for {}: {e}", p.name());
            exit_status::FAILED
        };
        match self {
            ExitSource::Reaped(rx) => rx
                .await
                .map_or(exit_status::UNKNOWN, |e| exit_status::from_code(e.status)),
            ExitSource::RunscWait => match c.runsc.wait(&c.id, WaitOpts::default()).await {
                Ok(code) => exit_status::from_code(code),
                Err(e) => failed("runsc wait", &e),
            },
            ExitSource::RunscExec(run) => match run.await {
                Ok(Ok(code)) => exit_status::from_code(code),
                Ok(Err(e)) => failed("runsc exec", &e),
                Err(_) => exit_status::UNKNOWN,
            },
            ExitSource::InSandbox(sb, pid) => match sb.wait_pid(pid).await {
                Ok(w) => exit_status::from_code(w.code()),
                Err(e) => failed("wait in the sandbox", &e),
            },
            ExitSource::Known(status) => status,
        }
    }
}

impl Service {
    /// Waits for `p`'s exit from `source` in a task of its own and reports
    /// it; the handle ends once it is reported.
    pub(super) fn supervise(
        self: &Arc<Self>,
        c: Arc<Container>,
        p: Arc<Process>,
        source: ExitSource,
    ) -> JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            let status = source.status(&c, &p).await;
            // A checkpoint that restores the container in place keeps the
            // old sandbox's exit: for containerd the task never stopped.
            if p.is_init() && c.try_park(status) {
                return;
            }
            svc.process_exited(&c, &p, status).await;
        })
    }

    /// Drains output, records the exit, publishes OOM (first) and exit.
    async fn process_exited(&self, c: &Arc<Container>, p: &Process, status: u32) {
        // Before containerd hears of it and tears the pod's network down:
        // the forwarder's sockets would keep the namespace alive.
        if let Some(f) = c.take_forwarder().filter(|_| p.is_init()) {
            if let Some(rule) = f.stop().await {
                let monitor = self.monitor();
                self.cleanups
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .spawn(async move { rule.remove(&monitor).await });
            }
        }
        p.io.drain(COPY_AFTER_EXIT_TIMEOUT).await;
        // After the start's event, before the delete's.
        let _turn = p.event_turn().await;
        // Whether the sandbox is gone first: the kill it died of is counted
        // by the time its exit is seen. Asked only where it matters (an
        // exec's own exit costs nothing more).
        let sandbox_gone = if p.is_init() && !c.is_member() {
            true
        } else if p.is_init() || status == exit_status::FAILED {
            self.sandbox_exited(c, p, status).await
        } else {
            false
        };
        let oom = p.is_init()
            && self.ooms.take(
                c.sandbox_id(),
                p.oom_baseline(),
                c.oom_kills().await,
                status,
                sandbox_gone,
            );
        // A wait that failed because the sandbox died (the kernel's OOM
        // killer, a SIGKILL): the process was killed with it.
        let status = if status == exit_status::FAILED && (oom || sandbox_gone) {
            exit_status::KILLED
        } else {
            status
        };
        let deleted = p.status() == Status::Deleted;
        if !p.exited(status) || deleted {
            return;
        }
        log::debug!("exit id={} exec_id={} status={status}", c.id, p.exec_id());
        if oom {
            self.events
                .send(TaskOOM {
                    container_id: c.id.clone(),
                    ..Default::default()
                })
                .await;
        }
        let exit = p.exit().map(|e| convert::timestamp(e.at));
        self.events
            .send(TaskExit {
                container_id: c.id.clone(),
                id: if p.is_init() {
                    c.id.clone()
                } else {
                    p.exec_id().to_string()
                },
                pid: p.pid(),
                exit_status: status,
                exited_at: exit.into(),
                ..Default::default()
            })
            .await;
    }

    /// Whether the sandbox `c` runs in (its own, or its pod's) has exited.
    /// An init's wait that failed (`status` FAILED) most often lost its sandbox,
    /// whose exit comes a little later (a SIGKILLed sandbox first frees its
    /// memory): it is awaited for a while, or an OOM kill the sandbox's
    /// exit reports first would not be this process's too.
    async fn sandbox_exited(&self, c: &Container, p: &Process, status: u32) -> bool {
        let id = if c.is_member() { c.sandbox_id() } else { &c.id };
        let Some(sandbox) = self.containers().get(id).cloned() else {
            return true;
        };
        if sandbox.init.exit().is_some() {
            return true;
        }
        // Only an init waits: an exec's exit is not held up (a failed wait
        // in a live sandbox would cost its ExecSync the whole grace).
        if status == exit_status::FAILED && p.is_init() {
            return tokio::time::timeout(SANDBOX_EXIT_GRACE, sandbox.init.wait())
                .await
                .is_ok();
        }
        let pid = sandbox.init.pid();
        !crate::blocking::blocking(move || Ok(crate::host::process_alive(pid)))
            .await
            .unwrap_or(false)
    }
}
