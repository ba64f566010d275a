//! Start and Delete of a container's init (an exec's start is in
//! `exec.rs`, what happens on exit in `exit.rs`).

use std::{sync::Arc, time::Instant};

use containerd_shim::api;
use runsc::{DeleteOpts, RestoreOpts, StartOpts};

use super::{exit::ExitSource, io::runtime_stdio, Service};
use crate::{
    container::Container,
    convert,
    error::{Error, Result},
    events::{TaskDelete, TaskStart},
    mount,
    portforward::{self, Forwarder},
    process::{AfterFailedStart, Status},
    sandbox_root,
};

impl Service {
    pub(super) async fn start(
        self: Arc<Self>,
        req: api::StartRequest,
    ) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            return self.start_exec(c, &req.exec_id).await;
        }
        let init = c.init.clone();
        // Held until TaskStart is out: an exit seen meanwhile waits for it.
        let turn = init.event_turn().await;
        // Without a cgroup yet (a restore finds its own) the count is 0.
        init.begin_start(Some(c.oom_kills().await.unwrap_or(0)))?;
        let (pid, exit) = match self.start_init(&c).await {
            Ok(started) => started,
            Err(e) => {
                // A member or a restore is left stopped so containerd can
                // delete it. A sandbox may live on: Delete of a created
                // container force-deletes it (unless its exit came meanwhile).
                let then = if c.is_member() || c.restore_from.is_some() {
                    AfterFailedStart::Exited
                } else {
                    AfterFailedStart::Created
                };
                init.start_failed(then).await;
                return Err(e);
            }
        };
        init.started(pid);
        if let Some(exit) = exit {
            self.supervise(c.clone(), init.clone(), exit);
        }
        let pid = init.pid();
        self.events
            .send(TaskStart {
                container_id: c.id.clone(),
                pid,
                ..Default::default()
            })
            .await;
        drop(turn);
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    /// Starts (or restores) the init; returns its host pid if it has a new
    /// one (0: the sandbox's, known since create) and where its exit comes
    /// from if not supervised yet (a sandbox's is, since create).
    async fn start_init(&self, c: &Arc<Container>) -> Result<(u32, Option<ExitSource>)> {
        let init = &c.init;
        if let Some(image) = &c.restore_from {
            let pid_file = c.bundle.init_pid_file();
            let since = Instant::now();
            let opts = RestoreOpts {
                stdio: runtime_stdio(&init.io),
                image_path: image.into(),
                bundle: Some(c.bundle.path().to_path_buf()),
                detach: true,
                pid_file: Some(pid_file.clone()),
                console_socket: init.io.console_socket(),
                user_log: None,
                netns_check: c.netns_check,
            };
            c.runsc
                .restore(&c.id, opts)
                .await
                .map_err(|e| Error::runsc(format!("restore container {} from {image}", c.id), e))?;
            let pid = runsc::pid_file::read(&pid_file)
                .await
                .map_err(|e| Error::runsc(format!("restore container {}", c.id), e))?;
            // Known even if attaching stdio fails: the sandbox runs.
            init.set_pid(pid);
            c.find_cgroup(pid).await;
            let exit = ExitSource::Reaped(self.reaper.claim(pid, since));
            init.io
                .started()
                .await
                .map_err(|e| Error::io(format!("attach stdio of {}", c.id), e))?;
            return Ok((pid, Some(exit)));
        }
        let stdio = if c.is_member() {
            runtime_stdio(&init.io)
        } else {
            runsc::Stdio::default()
        };
        // runsc takes the pod's addresses over as it starts.
        let addresses = match &c.pod_netns {
            Some(ns) => portforward::pod_addresses(ns).await,
            None => Vec::new(),
        };
        let opts = StartOpts {
            stdio,
            netns_check: c.netns_check,
        };
        c.runsc
            .start(&c.id, opts)
            .await
            .map_err(|e| Error::runsc(format!("start container {}", c.id), e))?;
        if !c.is_member() {
            if let Some(ns) = &c.pod_netns {
                let target = portforward::Target {
                    runsc: c.runsc.clone(),
                    id: c.id.clone(),
                    addresses,
                };
                c.set_forwarder(Forwarder::start(ns.clone(), target, self.monitor()));
            }
            return Ok((0, None));
        }
        if !init.stdio.terminal {
            init.io
                .started()
                .await
                .map_err(|e| Error::io(format!("attach stdio of {}", c.id), e))?;
        }
        Ok((0, Some(ExitSource::RunscWait)))
    }

    pub(super) async fn delete(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = match self.container(&req.id) {
            Ok(c) => c,
            Err(e) => {
                // Not created yet: containerd has given that Create up.
                if req.exec_id.is_empty() {
                    self.inflight.abandon(&req.id);
                }
                return Err(e);
            }
        };
        let p = c.process(&req.exec_id)?;
        // After the exit's event, and after a Delete already under way:
        // a second Delete (containerd sends one from the exit handler and
        // one from a failed RunPodSandbox's cleanup) waits for the first
        // and then finds the process gone, so containerd never closes the
        // connection under the first one's reply.
        let _turn = p.event_turn().await;
        let was_created = p.delete()? == Status::Created;
        // A container that ran on its own sandbox leaves only runsc's state
        // and cgroups once it exited. Those go off containerd's critical
        // path, and only once this reply is ready (spawning runsc holds up
        // the runtime thread for about a millisecond); the shim waits for
        // them before it exits.
        let in_background = p.is_init() && !c.is_member() && !was_created;
        if p.is_init() {
            // Always force: the sandbox may be gone; runsc's state files are not.
            if in_background {
                self.ooms.forget(c.sandbox_id());
            } else {
                if let Err(e) = c.runsc.delete(&c.id, DeleteOpts { force: true }).await {
                    log::warn!("runsc delete id={}: {e}", c.id);
                }
                let root = (!c.is_member()).then(|| c.runsc_root.clone());
                sandbox_root::remove_leftovers(root, c.cgroups_path.clone()).await;
            }
            let execs: Vec<_> = c.execs().values().cloned().collect();
            for e in execs {
                e.io.close().await;
            }
            p.io.close().await;
            let (b, mounted) = (c.bundle.clone(), c.rootfs_mounted);
            let mark = in_background.then(|| c.runsc_root.clone());
            let _ = crate::blocking::blocking(move || {
                // Before the answer: the client may reuse the id at once.
                if let Some(root) = mark {
                    sandbox_root::mark_cleanup(&root);
                }
                mount::remove_filestores(&b);
                if mounted {
                    mount::unmount_rootfs(&b);
                }
                Ok(())
            })
            .await;
            self.containers().remove(&c.id);
        } else {
            p.io.close().await;
            c.execs().remove(&req.exec_id);
        }
        let exit = p.exit();
        let status = exit.map(|e| e.status).unwrap_or(if was_created {
            0
        } else {
            crate::process::exit_status::UNKNOWN
        });
        let at = convert::timestamp(
            exit.map(|e| e.at)
                .unwrap_or_else(std::time::SystemTime::now),
        );
        if p.is_init() {
            self.events
                .send(TaskDelete {
                    container_id: c.id.clone(),
                    pid: p.pid(),
                    exit_status: status,
                    exited_at: Some(at.clone()).into(),
                    id: c.id.clone(),
                    ..Default::default()
                })
                .await;
        }
        if in_background {
            self.delete_in_background(&c);
        }
        Ok(api::DeleteResponse {
            pid: p.pid(),
            exit_status: status,
            exited_at: Some(at).into(),
            ..Default::default()
        })
    }

    /// Force-deletes `c` in runsc and removes its leftovers as a cleanup the
    /// shim waits for before it exits.
    fn delete_in_background(&self, c: &Container) {
        let leftovers = crate::cleanup::Leftovers {
            delete: c
                .runsc
                .delete_command_line(&c.id, DeleteOpts { force: true }),
            root: c.runsc_root.clone(),
            cgroups: c.cgroups_path.clone(),
        };
        let monitor = self.monitor();
        let place = self.cleanup_in;
        let id = c.id.clone();
        self.cleanups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(async move {
                if !leftovers.remove_at(&monitor, place).await {
                    log::warn!(
                        "cleanup of sandbox {id} failed: runsc delete, or its runsc root left"
                    );
                }
            });
    }
}
