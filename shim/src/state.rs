//! What a container's shim persists in its bundle so the `delete` action
//! (run by containerd after the shim is gone) can clean up with the same
//! runsc binary, root and flags. gVisor's R22 shim lost this (value receiver
//! bug) and always cleaned up with defaults.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    options::Options,
};

/// File name inside the bundle.
pub const STATE_FILE: &str = "runsc-shim.json";

/// Persisted per-container state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The container's options.
    pub options: Options,
    /// runsc flags actually used (after `%ID%` substitution and defaults).
    pub runsc_flags: BTreeMap<String, String>,
    /// runsc `--root`.
    pub runsc_root: String,
    /// The sandbox this container belongs to.
    pub sandbox_id: String,
}

impl State {
    /// Writes the state into `bundle`.
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join(STATE_FILE);
        let data = serde_json::to_vec(self)
            .map_err(|e| Error::Other(format!("encode {}: {e}", path.display())))?;
        std::fs::write(&path, data).map_err(|e| Error::os(format!("write {}", path.display()), e))
    }

    /// Reads the state from `bundle`; None if the shim never got that far.
    pub fn load(bundle: &Path) -> Result<Option<State>> {
        let path: PathBuf = bundle.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| Error::Other(format!("decode {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::os(format!("read {}", path.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), None);
        let mut s = State {
            options: Options::default(),
            runsc_flags: BTreeMap::new(),
            runsc_root: "/run/containerd/runsc/default".into(),
            sandbox_id: "pod".into(),
        };
        s.runsc_flags.insert("network".into(), "none".into());
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), Some(s));
    }
}
