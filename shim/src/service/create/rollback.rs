//! What a Create has done so far, and undoing exactly that when a later
//! stage fails.

use std::{path::PathBuf, sync::Arc};

use runsc::{DeleteOpts, Runsc};

use crate::{blocking::blocking, bundle::Bundle, mount, process::Process, sandbox_root};

/// The steps of a Create that leave something behind, as they are done.
#[derive(Default)]
pub(super) struct Rollback {
    /// The sandbox's runsc root, made by this Create (a pod member's
    /// failure leaves its pod's root alone).
    root: Option<String>,
    /// The rootfs this Create mounted.
    mounted: Option<Bundle>,
    /// The init whose stdio is open.
    init: Option<Arc<Process>>,
    /// `runsc create` began: its state and the container's cgroup may be
    /// left.
    runsc: Option<(Runsc, String, Option<PathBuf>)>,
    /// `runsc create` succeeded: its state is there.
    created: bool,
}

impl Rollback {
    /// The sandbox's root was made.
    pub fn made_root(&mut self, root: &str) {
        self.root = Some(root.to_string());
    }

    /// The rootfs was mounted.
    pub fn mounted(&mut self, bundle: &Bundle) {
        self.mounted = Some(bundle.clone());
    }

    /// The init's stdio was opened.
    pub fn opened_io(&mut self, init: &Arc<Process>) {
        self.init = Some(init.clone());
    }

    /// `runsc create` of `id` is about to run.
    pub fn creating(&mut self, runsc: &Runsc, id: &str, cgroups_path: Option<PathBuf>) {
        self.runsc = Some((runsc.clone(), id.to_string(), cgroups_path));
    }

    /// `runsc create` succeeded.
    pub fn created(&mut self) {
        self.created = true;
    }

    /// Undoes what was recorded, latest first.
    pub async fn undo(self) {
        if let Some((runsc, id, cgroups)) = self.runsc {
            // A create that failed late (or overran) may have left state.
            if self.created || runsc.has_state(&id).await {
                if let Err(e) = runsc.delete(&id, DeleteOpts { force: true }).await {
                    log::warn!("runsc delete id={id} after failed create: {e}");
                }
            }
            sandbox_root::remove_leftovers(None, cgroups).await;
        }
        if let Some(init) = self.init {
            init.io.close().await;
        }
        if let Some(bundle) = self.mounted {
            let _ = blocking(move || {
                mount::unmount_rootfs(&bundle);
                Ok(())
            })
            .await;
        }
        if let Some(root) = self.root {
            sandbox_root::remove_leftovers(Some(root), None).await;
        }
    }
}
