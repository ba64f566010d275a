//! Checkpoint, with and without leaving the container running.
//!
//! runsc 0.0~20221219 hangs in `checkpoint --leave-running` on a running
//! sandbox and panics on a paused one (losing it), so "leave running" is done
//! as checkpoint (which stops the sandbox) followed at once by a restore of
//! the same container from the image just written. The old sandbox's exit
//! is parked, not reported: for containerd the task never stopped.

use std::{sync::Arc, time::Duration};

use containerd_shim::{
    api,
    protos::{protobuf::Message, shim::oci::CheckpointOptions},
};
use runsc::{CheckpointOpts, DeleteOpts, RestoreOpts};

use super::{exit::ExitSource, Service};
use crate::{
    container::Container,
    error::{Error, Result},
    events::TaskCheckpointed,
    process::Status,
};

impl Service {
    pub(super) async fn checkpoint(
        self: Arc<Self>,
        req: api::CheckpointTaskRequest,
    ) -> Result<api::Empty> {
        let c = self.container(&req.id)?;
        // containerd pauses a task around its checkpoint.
        let was_paused = match c.init.status() {
            Status::Running => false,
            Status::Paused => true,
            _ => {
                return Err(Error::FailedPrecondition(format!(
                    "container {} is not running",
                    c.id
                )))
            }
        };
        if c.is_member() {
            return Err(Error::Unimplemented(format!(
                "checkpoint of pod member {}: runsc checkpoints whole sandboxes",
                c.id
            )));
        }
        let opts = match req.options.as_ref() {
            Some(a) if !a.value.is_empty() => CheckpointOptions::parse_from_bytes(&a.value)
                .map_err(|e| Error::InvalidArgument(format!("invalid checkpoint options: {e}")))?,
            _ => CheckpointOptions::default(),
        };
        let image = if req.path.is_empty() {
            opts.image_path.clone()
        } else {
            req.path.clone()
        };
        if image.is_empty() {
            return Err(Error::InvalidArgument(
                "checkpoint needs an image path".into(),
            ));
        }
        tokio::fs::create_dir_all(&image)
            .await
            .map_err(|e| Error::os(format!("create {image}"), e))?;
        // runsc cannot checkpoint a paused sandbox.
        if was_paused {
            c.runsc.resume(&c.id).await.map_err(|e| {
                Error::runsc(format!("resume container {} to checkpoint it", c.id), e)
            })?;
            let _ = c.init.resume();
        }
        if !opts.exit {
            c.park_exit();
        }
        let res = c
            .runsc
            .checkpoint(
                &c.id,
                CheckpointOpts {
                    image_path: image.clone().into(),
                    leave_running: false,
                },
            )
            .await
            .map_err(|e| Error::runsc(format!("checkpoint container {} to {image}", c.id), e));
        if let Err(e) = res {
            self.release_parked(&c).await;
            return Err(e);
        }
        if !opts.exit {
            if let Err(e) = self.clone().restore_in_place(&c, &image, was_paused).await {
                self.release_parked(&c).await;
                return Err(e);
            }
        }
        self.events
            .send(TaskCheckpointed {
                container_id: c.id.clone(),
                ..Default::default()
            })
            .await;
        Ok(api::Empty::new())
    }

    /// Reports an exit that was parked while a restore was attempted.
    async fn release_parked(self: &Arc<Self>, c: &Arc<Container>) {
        if let Some(status) = c.unpark_exit() {
            let init = c.init.clone();
            let _ = self
                .supervise(c.clone(), init, ExitSource::Known(status))
                .await;
        }
    }

    /// Brings the container back from `image` under the same id.
    async fn restore_in_place(
        self: Arc<Self>,
        c: &Arc<Container>,
        image: &str,
        pause: bool,
    ) -> Result<()> {
        // The checkpoint stopped the sandbox; wait until its exit is parked.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !c.exit_parked() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Err(e) = c.runsc.delete(&c.id, DeleteOpts { force: true }).await {
            log::warn!("runsc delete id={} before restore: {e}", c.id);
        }
        let rt = c
            .init
            .io
            .reopen_outputs()
            .map_err(|e| Error::io(format!("reattach stdio of {}", c.id), e))?;
        let fd = |f: Option<std::os::fd::OwnedFd>| match f {
            Some(fd) => runsc::StdioSource::Fd(fd),
            None => runsc::StdioSource::Null,
        };
        let pid_file = c.bundle.init_pid_file();
        let since = std::time::Instant::now();
        let opts = RestoreOpts {
            stdio: runsc::Stdio {
                stdin: runsc::StdioSource::Null,
                stdout: fd(rt.stdout),
                stderr: fd(rt.stderr),
            },
            image_path: image.into(),
            bundle: Some(c.bundle.path().to_path_buf()),
            detach: true,
            pid_file: Some(pid_file.clone()),
            console_socket: None,
            user_log: None,
            netns_check: c.netns_check,
        };
        c.runsc
            .restore(&c.id, opts)
            .await
            .map_err(|e| Error::runsc(format!("restore container {} after checkpoint", c.id), e))?;
        let pid = runsc::pid_file::read(&pid_file)
            .await
            .map_err(|e| Error::runsc(format!("restore container {} after checkpoint", c.id), e))?;
        c.init.set_pid(pid);
        let exit = ExitSource::Reaped(self.reaper.claim(pid, since));
        // The old sandbox's exit is dropped: the task goes on.
        let _ = c.unpark_exit();
        self.supervise(c.clone(), c.init.clone(), exit);
        if pause {
            // containerd resumes the task after its checkpoint.
            c.runsc
                .pause(&c.id)
                .await
                .map_err(|e| Error::runsc(format!("pause restored container {}", c.id), e))?;
            let _ = c.init.pause();
        }
        Ok(())
    }
}
