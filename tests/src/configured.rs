//! A private containerd of a given version with a given configuration: the
//! binary from a directory (the system's, or one `scripts/versions.sh`
//! unpacked) and the `config.toml` a test composes, typically a documented
//! file plus only the private paths that keep it apart from the host's
//! containerd (root, state, sockets). For tests of the configuration files
//! users copy; the containerd is the same [`Containerd`] as elsewhere, with
//! its leak checks.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    containerd::{require_e2e, Containerd, SOCKET_NAME},
    host::OutputExt,
    image,
};

/// Where a private containerd keeps its things, all inside its own
/// temporary directory (removed when the [`Containerd`] is dropped).
#[derive(Debug, Clone)]
pub struct PrivatePaths {
    /// The temporary directory itself (free for the test's own files).
    pub dir: PathBuf,
    /// containerd's `root`.
    pub root: PathBuf,
    /// containerd's `state`.
    pub state: PathBuf,
    /// The gRPC socket (`[grpc] address`); ttrpc's is `<socket>.ttrpc`.
    pub socket: PathBuf,
}

/// What the test's configuration makes of the private containerd.
#[derive(Debug, Clone)]
pub struct Configured {
    /// The whole `config.toml`.
    pub config: String,
    /// The containerd namespace its containers live in (`k8s.io` for pods).
    pub namespace: String,
    /// runsc's state root for that namespace, for the leak checks.
    pub runsc_root: PathBuf,
}

impl Containerd {
    /// Starts `<bin_dir>/containerd` with the configuration `configure`
    /// returns for this containerd's private paths; its `PATH` is
    /// `path_dirs`, then `bin_dir`, then the test's. No image is imported.
    pub fn start_configured(
        bin_dir: &Path,
        path_dirs: &[PathBuf],
        configure: impl FnOnce(&PrivatePaths) -> Configured,
    ) -> Containerd {
        require_e2e();
        let dir = tempfile::Builder::new()
            .prefix("ctrd-cfg-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let paths = PrivatePaths {
            dir: d.to_path_buf(),
            root: d.join("root"),
            state: d.join("state"),
            socket: d.join(SOCKET_NAME),
        };
        let c = configure(&paths);
        let mut dirs = path_dirs.to_vec();
        dirs.push(bin_dir.to_path_buf());
        Containerd::boot(
            dir,
            &bin_dir.join("containerd"),
            &c.config,
            c.namespace,
            c.runsc_root,
            &dirs,
        )
    }

    /// Imports the busybox image ([`image::IMAGE_REF`]) and the pause image,
    /// the latter also under `sandbox_ref` (the CRI plugin's configured
    /// sandbox image, which then needs no registry). The archives are
    /// built in this containerd's directory.
    pub fn import_pod_images(&self, sandbox_ref: &str) {
        let busybox = image::build_busybox_image(self.dir()).expect("build busybox image");
        let pause = image::build_pause_image(self.dir()).expect("build pause image");
        for archive in [busybox, pause] {
            self.ctr_ok(&["images", "import", &archive.to_string_lossy()]);
        }
        self.ctr_ok(&["images", "tag", image::PAUSE_REF, sandbox_ref]);
    }
}

/// `<bin_dir>/containerd --version`'s version (`1.6.20~ds1`, `2.1.9+unknown`).
pub fn containerd_version(bin_dir: &Path) -> String {
    let out = Command::new(bin_dir.join("containerd"))
        .arg("--version")
        .output()
        .expect("run containerd --version");
    assert!(out.status.success(), "containerd --version: {}", out.err());
    // "containerd github.com/containerd/containerd[/v2] 1.6.20~ds1 <revision>"
    out.out()
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

/// `<bin_dir>/containerd --config <config> config dump`: the configuration
/// as that containerd loaded it, defaults filled in.
pub fn config_dump(bin_dir: &Path, config: &Path) -> String {
    let out = Command::new(bin_dir.join("containerd"))
        .arg("--config")
        .arg(config)
        .args(["config", "dump"])
        .output()
        .expect("run containerd config dump");
    assert!(
        out.status.success(),
        "containerd config dump of {}: {}",
        config.display(),
        out.err()
    );
    out.out()
}
