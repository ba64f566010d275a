//! What a container's shim persists in its bundle so the `delete` action
//! (run by containerd after the shim is gone) can clean up with the same
//! runsc binary, root and flags. gVisor's R22 shim lost this (value receiver
//! bug) and always cleaned up with defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    bundle::Bundle,
    error::{Error, Result},
    options::Options,
};

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
    pub fn save(&self, bundle: &Bundle) -> Result<()> {
        let path = bundle.state_file();
        let data = serde_json::to_vec(self)
            .map_err(|e| Error::Other(format!("encode {}: {e}", path.display())))?;
        std::fs::write(&path, data).map_err(|e| Error::os(format!("write {}", path.display()), e))
    }

    /// Reads the state from `bundle`; None if the shim never got that far.
    pub fn load(bundle: &Bundle) -> Result<Option<State>> {
        let path = bundle.state_file();
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
        let tmp = tempfile::tempdir().unwrap();
        let dir = Bundle::new(tmp.path());
        assert_eq!(State::load(&dir).unwrap(), None);
        let mut s = State {
            options: Options::default(),
            runsc_flags: BTreeMap::new(),
            runsc_root: "/run/containerd/runsc/default".into(),
            sandbox_id: "pod".into(),
        };
        s.runsc_flags.insert("network".into(), "none".into());
        s.save(&dir).unwrap();
        assert_eq!(State::load(&dir).unwrap(), Some(s));
    }
}
