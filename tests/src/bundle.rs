//! OCI bundles with a static busybox rootfs, for driving runsc directly.
//!
//! The spec comes from `runsc spec` (so it matches what the installed runsc
//! expects) with `process.args` patched in and the terminal turned off.

use std::{
    fs, io,
    path::{Path, PathBuf},
    process::Command,
};

use tempfile::TempDir;

/// A bundle directory (removed on drop) holding `config.json` and `rootfs/`.
#[derive(Debug)]
pub struct Bundle {
    dir: TempDir,
}

impl Bundle {
    /// Bundle whose process runs `args` (e.g. `["sh", "-c", "exit 3"]`).
    pub fn busybox(args: &[&str]) -> io::Result<Bundle> {
        let dir = tempfile::Builder::new().prefix("bundle-").tempdir()?;
        // The same rootfs as the image the end-to-end tests import.
        crate::image::write_busybox_rootfs(&dir.path().join("rootfs"))?;
        let out = Command::new("runsc")
            .arg("spec")
            .current_dir(dir.path())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "runsc spec failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let bundle = Bundle { dir };
        let args: Vec<serde_json::Value> = args.iter().map(|a| (*a).into()).collect();
        bundle.edit_spec(|spec| {
            spec["process"]["args"] = serde_json::Value::Array(args);
            spec["process"]["terminal"] = false.into();
        })?;
        Ok(bundle)
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<bundle>/rootfs`.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// `<bundle>/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// Reads `config.json`, lets `f` change it, writes it back.
    pub fn edit_spec(&self, f: impl FnOnce(&mut serde_json::Value)) -> io::Result<()> {
        let path = self.config_path();
        let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
        f(&mut spec);
        fs::write(&path, serde_json::to_vec_pretty(&spec)?)
    }

    /// The current `config.json`.
    pub fn spec(&self) -> io::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&fs::read(self.config_path())?)?)
    }
}

/// Panics (never skips) unless running as root with `runsc` on `PATH`.
pub fn require_root_and_runsc() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests drive the real runsc and must run as root (try `sudo -E cargo test`)"
    );
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("runsc").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "runsc is not on PATH; install gVisor's runsc (e.g. `make deps`) before running these tests"
    );
    crate::image::busybox();
}
