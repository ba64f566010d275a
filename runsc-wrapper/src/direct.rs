//! When [`Runsc`] talks to the sandbox instead of spawning runsc: the
//! choice ([`SandboxControl`]), the dialect check (the binary's version,
//! then a handshake on the first sandbox), and the fallback to the CLI,
//! decided once per client and logged once with the reason.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::sync::OnceCell;

use crate::{
    control::{ControlFailure, Dialect, Sandbox},
    error::Error,
    global::Runsc,
};

/// How calls on a running sandbox are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxControl {
    /// Over the sandbox's control socket when this runsc's dialect is
    /// known, else (and after any sign of a mismatch) through the CLI.
    #[default]
    Direct,
    /// Always through the runsc command line.
    Cli,
}

impl std::str::FromStr for SandboxControl {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "direct" => Ok(SandboxControl::Direct),
            "cli" => Ok(SandboxControl::Cli),
            other => Err(format!("{other:?} is not one of direct, cli")),
        }
    }
}

/// Per-client state of the direct path (shared by clones).
#[derive(Debug, Default)]
pub(crate) struct DirectState {
    /// Why the direct path is off for good, once it is.
    off: OnceLock<String>,
    /// The handshake's outcome, asked on the first sandbox.
    handshake: OnceCell<bool>,
}

/// Deadline for quick control calls (not waits).
const CALL_DEADLINE: Duration = Duration::from_secs(30);

impl Runsc {
    /// Turns the direct path off for this client, logging why once.
    pub(crate) fn direct_off(&self, why: String) {
        if self.direct.off.set(why.clone()).is_ok() {
            log::info!(
                "{}: sandbox calls go through the CLI: {why}",
                self.command.display()
            );
        }
    }

    /// Whether the direct path is on (not configured off, not fallen back).
    pub fn direct_enabled(&self) -> bool {
        self.sandbox_control == SandboxControl::Direct && self.direct.off.get().is_none()
    }

    /// A direct handle on container `id`'s sandbox, or `None` when calls
    /// must go through the CLI (configured so, no `--root`, an unknown
    /// dialect, or a container without state yet).
    pub async fn sandbox(&self, id: &str) -> Option<Sandbox> {
        if !self.direct_enabled() {
            return None;
        }
        let root = self.root.as_ref()?;
        let version = match self.version().await {
            Ok(v) => v,
            Err(e) => {
                self.direct_off(format!("cannot tell its version: {e}"));
                return None;
            }
        };
        let Some(dialect) = Dialect::for_version(&version) else {
            self.direct_off(format!(
                "version {version} has no control dialect this shim speaks"
            ));
            return None;
        };
        let deadline = self.timeouts.get("kill").unwrap_or(CALL_DEADLINE);
        let sb = match Sandbox::open(root, id, dialect, deadline).await {
            Ok(sb) => sb,
            Err(e) => {
                self.fall_back_on(&e);
                return None;
            }
        };
        let agreed = *self
            .direct
            .handshake
            .get_or_init(|| async {
                match sb.handshake().await {
                    Ok(()) => true,
                    Err(e) => !self.fall_back_on(&e),
                }
            })
            .await;
        agreed.then_some(sb)
    }

    /// Acts on a direct call's failure: true means "use the CLI" (see
    /// [`Error::calls_for_cli`]), and a protocol mismatch also turns the
    /// direct path off for this client, for good.
    pub(crate) fn fall_back_on(&self, e: &Error) -> bool {
        if let Error::Control {
            failure: ControlFailure::Protocol(m),
            method,
            ..
        } = e
        {
            self.direct_off(format!("{method}: {m}"));
        }
        e.calls_for_cli()
    }
}

impl Error {
    /// Whether a direct call's failure means "make this call through the
    /// CLI": a protocol mismatch, a state file that cannot be read, or a
    /// call this sandbox does not serve. A check only: the client's
    /// direct path stays as it is.
    pub fn calls_for_cli(&self) -> bool {
        matches!(
            self,
            Error::Control {
                failure: ControlFailure::Protocol(_)
                    | ControlFailure::State(_)
                    | ControlFailure::Unsupported(_),
                ..
            }
        )
    }
}

/// Shared, fresh state for a new client.
pub(crate) fn new_state() -> Arc<DirectState> {
    Arc::new(DirectState::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::global::GlobalOpts;

    fn control(failure: ControlFailure) -> Error {
        Error::Control {
            method: "containerManager.ExecuteAsync".into(),
            id: "c1".into(),
            failure,
        }
    }

    #[test]
    fn asking_whether_to_fall_back_changes_nothing() {
        let r = GlobalOpts::default().root("/nonexistent").build();
        let mismatch = control(ControlFailure::Protocol("unknown method".into()));
        assert!(mismatch.calls_for_cli());
        assert!(mismatch.calls_for_cli());
        assert!(
            r.direct_enabled(),
            "a check must not turn the direct path off"
        );
        // Acting on it does, for this client and its clones.
        let clone = r.clone();
        assert!(r.fall_back_on(&mismatch));
        assert!(!r.direct_enabled() && !clone.direct_enabled());
    }

    #[test]
    fn only_a_mismatch_turns_the_direct_path_off() {
        let r = GlobalOpts::default().root("/nonexistent").build();
        let unreadable = control(ControlFailure::State("no state file".into()));
        assert!(r.fall_back_on(&unreadable));
        assert!(r.direct_enabled());
        let refused = control(ControlFailure::Refused("no such process".into()));
        assert!(!refused.calls_for_cli());
        assert!(!r.fall_back_on(&refused));
        assert!(r.direct_enabled());
    }
}
