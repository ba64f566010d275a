//! The shim's [`runsc::ProcessMonitor`]: every child is spawned here and its
//! exit comes from containerd-shim's single `waitpid(-1)` loop (the shim is a
//! child subreaper), so no exit status is stolen or lost.
//!
//! One subscription to all exits is taken when the shim starts. Exits of pids
//! nobody has claimed yet are kept (bounded), because some pids are learnt
//! only after they may already have exited: the sandbox (from `runsc create
//! --pid-file`) and the waiting `runsc exec` child (from `--pid-file`).
//! Every claim says since when the process can have existed: a kept exit
//! older than that belongs to an earlier process with the same (reused) pid
//! and is thrown away, never handed to the new one.

use std::{
    collections::{HashMap, VecDeque},
    io,
    process::{Child, Command},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use async_trait::async_trait;
use containerd_shim::monitor::{ExitEvent, Subject, Topic};
use runsc::{Exit, ExitReceiver, ProcessMonitor};
use tokio::sync::oneshot;

/// How many unclaimed exits are remembered.
const UNCLAIMED_MAX: usize = 512;

#[derive(Default)]
struct State {
    waiters: HashMap<u32, oneshot::Sender<Exit>>,
    unclaimed: VecDeque<(Exit, Instant)>,
}

/// Exit dispatcher and process monitor backed by the shim's reaper.
#[derive(Clone, Default)]
pub struct Reaper {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reaper")
    }
}

/// Makes this process the subreaper of everything it starts (a sandbox
/// outlives the `runsc create` that forked it) and starts the one loop
/// that reaps them: on each SIGCHLD every exited child is waited for and
/// its exit published to containerd-shim's monitor, which [`Reaper`]
/// subscribes to. Called once, by the server and by `delete`, before any
/// child is spawned.
pub fn reap_children() -> crate::Result<()> {
    use nix::{
        errno::Errno,
        sys::wait::{waitpid, WaitPidFlag, WaitStatus},
        unistd::Pid,
    };
    use tokio::signal::unix::{signal, SignalKind};

    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| crate::Error::os("become the child subreaper", e.into()))?;
    let mut sigchld =
        signal(SignalKind::child()).map_err(|e| crate::Error::os("subscribe to SIGCHLD", e))?;
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            loop {
                let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        log::warn!("waitpid: {e}");
                        break;
                    }
                };
                if let Err(e) = containerd_shim::asynchronous::monitor::monitor_notify_by_pid(
                    pid.as_raw(),
                    code,
                )
                .await
                {
                    log::error!("publish the exit of pid {pid}: {e}");
                }
            }
        }
    });
    Ok(())
}

impl Reaper {
    /// Subscribes to every exit the shim reaps and starts dispatching them.
    pub async fn start() -> crate::Result<Reaper> {
        let mut sub = containerd_shim::asynchronous::monitor::monitor_subscribe(Topic::Pid)
            .await
            .map_err(|e| crate::Error::Other(format!("subscribe to process exits: {e}")))?;
        let reaper = Reaper::default();
        let r = reaper.clone();
        tokio::spawn(async move {
            while let Some(ExitEvent { subject, exit_code }) = sub.rx.recv().await {
                if let Subject::Pid(pid) = subject {
                    if let Ok(pid) = u32::try_from(pid) {
                        r.dispatch(Exit {
                            pid,
                            status: exit_code,
                            at: std::time::SystemTime::now(),
                        });
                    }
                }
            }
        });
        Ok(reaper)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers one reaped exit.
    pub fn dispatch(&self, exit: Exit) {
        let mut st = self.lock();
        if let Some(tx) = st.waiters.remove(&exit.pid) {
            let _ = tx.send(exit);
            return;
        }
        if st.unclaimed.len() >= UNCLAIMED_MAX {
            st.unclaimed.pop_front();
        }
        st.unclaimed.push_back((exit, Instant::now()));
    }

    /// Claims the exit of `pid`, a process that did not exist before
    /// `since`; its exit may already have happened.
    pub fn claim(&self, pid: u32, since: Instant) -> ExitReceiver {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        // Exits of this pid from before `since` were another process's.
        st.unclaimed.retain(|(e, at)| e.pid != pid || *at >= since);
        if let Some(i) = st.unclaimed.iter().position(|(e, _)| e.pid == pid) {
            if let Some((exit, _)) = st.unclaimed.remove(i) {
                let _ = tx.send(exit);
                return rx;
            }
        }
        st.waiters.insert(pid, tx);
        rx
    }
}

#[async_trait]
impl ProcessMonitor for Reaper {
    async fn start(&self, cmd: &mut Command) -> io::Result<(Child, ExitReceiver)> {
        let since = Instant::now();
        let child = cmd.spawn()?;
        // The exit may already sit in `unclaimed`; claim() looks there first.
        let rx = self.claim(child.id(), since);
        Ok((child, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: u32, status: i32) -> Exit {
        Exit {
            pid,
            status,
            at: std::time::SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn exit_before_claim_is_kept() {
        let r = Reaper::default();
        let since = Instant::now();
        r.dispatch(exit(42, 3));
        assert_eq!(r.claim(42, since).await.unwrap().status, 3);
    }

    #[tokio::test]
    async fn claim_before_exit_is_woken() {
        let r = Reaper::default();
        let since = Instant::now();
        let rx = r.claim(7, since);
        r.dispatch(exit(8, 1));
        r.dispatch(exit(7, 137));
        assert_eq!(rx.await.unwrap().status, 137);
        assert_eq!(r.claim(8, since).await.unwrap().status, 1);
    }

    #[tokio::test]
    async fn an_old_exit_of_a_reused_pid_is_not_handed_out() {
        let r = Reaper::default();
        // pid 9's first owner exits and nobody claims it...
        r.dispatch(exit(9, 1));
        std::thread::sleep(std::time::Duration::from_millis(2));
        // ...then a new child gets pid 9 and is claimed.
        let mut rx = r.claim(9, Instant::now());
        assert!(rx.try_recv().is_err(), "stale exit handed to the new child");
        r.dispatch(exit(9, 5));
        assert_eq!(rx.await.unwrap().status, 5);
        assert!(r.lock().unclaimed.is_empty());
    }

    #[test]
    fn unclaimed_is_bounded() {
        let r = Reaper::default();
        for pid in 0..(UNCLAIMED_MAX as u32 + 10) {
            r.dispatch(exit(pid, 0));
        }
        assert_eq!(r.lock().unclaimed.len(), UNCLAIMED_MAX);
    }
}
