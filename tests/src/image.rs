//! An OCI image archive built locally from the host's static busybox, so no
//! registry is needed: `ctr images import` takes it as
//! [`IMAGE_REF`].

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use sha2::{Digest, Sha256};

/// The reference the imported image carries.
pub const IMAGE_REF: &str = "docker.io/library/busybox:latest";

/// A pause image for CRI pod sandboxes: the same busybox, sleeping.
pub const PAUSE_REF: &str = "localhost/runsc-shim/pause:test";

/// Applets linked to `/bin/busybox` in the image.
pub const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "sleep",
    "true",
    "false",
    "ls",
    "dd",
    "wc",
    "env",
    "pwd",
    "id",
    "date",
    "seq",
    "head",
    "tail",
    "mkdir",
    "kill",
    "ps",
    "grep",
    "md5sum",
    "sha256sum",
    "yes",
    "mount",
    "hostname",
    "stty",
    "tty",
    "printf",
    "test",
    "rm",
    "touch",
    "ip",
    "ifconfig",
    "cut",
    "tr",
];

/// The lowercase hex SHA-256 of `data` (an OCI digest without `sha256:`).
pub fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Packs `dir` into the uncompressed tar `out` the same way every time
/// (sorted, mtime 0, owned by root), so an image layer's digest depends on
/// its files alone.
pub fn layer_tar(dir: &Path, out: &Path) -> io::Result<()> {
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
        ])
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg("."))
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let st = cmd.status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{cmd:?} failed: {st}")))
    }
}

/// Writes a busybox rootfs (binary plus applet symlinks) into `dir`.
pub fn write_busybox_rootfs(dir: &Path) -> io::Result<()> {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    for d in ["tmp", "etc", "proc", "sys", "dev", "root", "var"] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::copy(busybox(), bin.join("busybox"))?;
    for a in APPLETS {
        let link = bin.join(a);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    // games: the user containerd-stress runs its containers as.
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ngames:x:5:60:games:/usr/games:/bin/sh\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\ngames:x:60:\n")?;
    Ok(())
}

/// Path of the host's static busybox.
pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: run `make deps` (apt-get install busybox-static)");
}

/// The busybox archive of this test process (built once, in a directory
/// of the process's own under the temporary directory).
pub fn busybox_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| build_busybox_image(&process_dir()).expect("build busybox image"))
}

/// The pause archive of this test process (built once, like [`busybox_archive`]).
pub fn pause_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| build_pause_image(&process_dir()).expect("build pause image"))
}

fn process_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = own_image_dir();
        fs::create_dir_all(&dir).expect("image dir");
        // Removed when the test process exits (the harness ends with exit()).
        // SAFETY: registers a plain function without captured state.
        unsafe { libc::atexit(remove_own_image_dir) };
        dir
    })
    .clone()
}

fn own_image_dir() -> PathBuf {
    std::env::temp_dir().join(format!("runsc-shim-image-{}", std::process::id()))
}

extern "C" fn remove_own_image_dir() {
    let _ = fs::remove_dir_all(own_image_dir());
}

/// Builds the busybox OCI archive in `work` and returns its path.
pub fn build_busybox_image(work: &Path) -> io::Result<PathBuf> {
    build_image(work, IMAGE_REF, &["/bin/sh"])
}

/// Builds the pause OCI archive in `work` and returns its path.
pub fn build_pause_image(work: &Path) -> io::Result<PathBuf> {
    build_image(work, PAUSE_REF, &["/bin/sleep", "2147483647"])
}

/// Builds an OCI archive of the busybox rootfs named `name` whose command
/// is `cmd`, in `work`, and returns its path.
pub fn build_image(work: &Path, name: &str, cmd: &[&str]) -> io::Result<PathBuf> {
    let layout = write_image_layout(work, name, cmd)?;
    let out = work.join(format!(
        "image-{}-oci.tar",
        &sha256_hex(name.as_bytes())[..12]
    ));
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout.dir)
        .arg("-cf")
        .arg(&out)
        .args(["oci-layout", "index.json", "blobs"]))?;
    let _ = fs::remove_dir_all(&layout.dir);
    Ok(out)
}

/// An OCI image layout directory of one image.
#[derive(Debug, Clone)]
pub struct ImageLayout {
    /// The directory (`oci-layout`, `index.json`, `blobs/sha256/`).
    pub dir: PathBuf,
    /// The image manifest's digest (`sha256:...`).
    pub manifest_digest: String,
}

impl ImageLayout {
    /// The blob of `digest` (`sha256:<hex>`), if the layout has it.
    pub fn blob(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.dir.join("blobs/sha256").join(hex)).filter(|p| p.is_file())
    }
}

/// Writes the OCI image layout of the busybox rootfs named `name` whose
/// command is `cmd` into a directory in `work`.
pub fn write_image_layout(work: &Path, name: &str, cmd: &[&str]) -> io::Result<ImageLayout> {
    let tag = sha256_hex(name.as_bytes())[..12].to_string();
    let rootfs = work.join(format!("image-rootfs-{tag}"));
    let layout = work.join(format!("image-layout-{tag}"));
    let _ = fs::remove_dir_all(&rootfs);
    let _ = fs::remove_dir_all(&layout);
    write_busybox_rootfs(&rootfs)?;
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;

    let layer_path = work.join(format!("layer-{tag}.tar"));
    layer_tar(&rootfs, &layer_path)?;
    let layer = fs::read(&layer_path)?;
    let layer_digest = sha256_hex(&layer);
    fs::write(blobs.join(&layer_digest), &layer)?;

    let config = serde_json::json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created_by": "runsc-shim tests"}]
    });
    let config = serde_json::to_vec(&config)?;
    let config_digest = sha256_hex(&config);
    fs::write(blobs.join(&config_digest), &config)?;

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer.len()
        }]
    });
    let manifest = serde_json::to_vec(&manifest)?;
    let manifest_digest = sha256_hex(&manifest);
    fs::write(blobs.join(&manifest_digest), &manifest)?;

    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": "latest"
            },
            "platform": {"architecture": go_arch(), "os": "linux"}
        }]
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    let mut f = fs::File::create(layout.join("oci-layout"))?;
    f.write_all(br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let _ = fs::remove_dir_all(&rootfs);
    let _ = fs::remove_file(&layer_path);
    Ok(ImageLayout {
        dir: layout,
        manifest_digest: format!("sha256:{manifest_digest}"),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
