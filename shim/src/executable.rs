//! Finding a container's `process.args[0]` at Create, as runc does.
//!
//! runsc creates a container whose executable does not exist and fails only
//! at Start; runc fails at Create, naming the binary, and Kubernetes reports
//! that as the container's create error. The lookup runs inside the
//! container's rootfs, never on the host: every candidate is opened with
//! `openat2(RESOLVE_IN_ROOT)`, so absolute symlinks (busybox's applets) and
//! `..` resolve within the rootfs. A candidate under one of the spec's
//! mounts cannot be judged from the rootfs and is accepted.

use std::{
    os::fd::AsFd,
    path::{Component, Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{openat2, OFlag, OpenHow, ResolveFlag},
    sys::stat::{fstat, SFlag},
};
use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// runc's PATH when the process environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a lookup of one candidate found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// An executable regular file.
    Executable,
    /// Something that cannot be run (a directory, no exec bit).
    NotExecutable,
    /// Nothing there.
    Missing,
    /// The rootfs cannot tell (under a mount, or the lookup itself failed).
    Unknown,
}

/// Fails like runc when the spec's `process.args[0]` cannot be found and
/// executed in the container's rootfs (`<bundle>/<root.path>`).
pub fn check(bundle: &Path, spec: &Spec) -> Result<()> {
    let Some(process) = spec.process() else {
        return Ok(());
    };
    let Some(name) = process.args().as_ref().and_then(|a| a.first()) else {
        return Err(Error::InvalidArgument(
            "process.args must not be empty".into(),
        ));
    };
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    let rootfs = bundle.join(root_path);
    let Ok(root) = std::fs::File::open(&rootfs) else {
        // No rootfs to look in: runsc will say what is wrong.
        return Ok(());
    };
    let cwd = process.cwd();
    let mounts: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().clone())
        .filter(|d| d.components().any(|c| matches!(c, Component::Normal(_))))
        .collect();
    let look = |candidate: &Path| -> Found {
        if mounts.iter().any(|m| candidate.starts_with(m)) {
            return Found::Unknown;
        }
        lookup(&root, candidate)
    };

    if name.contains('/') {
        let candidate = cwd.join(name);
        return match look(&candidate) {
            Found::Executable | Found::Unknown => Ok(()),
            Found::Missing => Err(Error::Executable(format!(
                "exec: {name:?}: stat {name}: no such file or directory"
            ))),
            Found::NotExecutable => Err(Error::Executable(format!(
                "exec: {name:?}: permission denied"
            ))),
        };
    }
    let path = process
        .env()
        .iter()
        .flatten()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let mut saw_unexecutable = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        match look(&cwd.join(dir).join(name)) {
            Found::Executable | Found::Unknown => return Ok(()),
            Found::NotExecutable => saw_unexecutable = true,
            Found::Missing => {}
        }
    }
    Err(Error::Executable(if saw_unexecutable {
        format!("exec: {name:?}: permission denied")
    } else {
        format!("exec: {name:?}: executable file not found in $PATH")
    }))
}

/// Looks `path` up inside `root` (absolute paths start at `root`).
fn lookup(root: &impl AsFd, path: &Path) -> Found {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect();
    if rel.as_os_str().is_empty() {
        return Found::NotExecutable;
    }
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    match openat2(root.as_fd(), rel.as_path(), how) {
        Ok(fd) => match fstat(&fd) {
            Ok(st) => {
                let regular =
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
                if regular && st.st_mode & 0o111 != 0 {
                    Found::Executable
                } else {
                    Found::NotExecutable
                }
            }
            Err(_) => Found::Unknown,
        },
        Err(Errno::ENOENT | Errno::ENOTDIR) => Found::Missing,
        // ELOOP, EACCES, ENOSYS (a kernel without openat2): runsc decides.
        Err(_) => Found::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use oci_spec::runtime::{MountBuilder, ProcessBuilder, RootBuilder, SpecBuilder};

    use super::*;

    fn spec(args: &[&str], env: &[&str], mounts: &[&str]) -> Spec {
        let process = ProcessBuilder::default()
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(env.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .cwd("/")
            .build()
            .unwrap();
        let mounts = mounts
            .iter()
            .map(|d| MountBuilder::default().destination(d).build().unwrap())
            .collect::<Vec<_>>();
        SpecBuilder::default()
            .process(process)
            .root(RootBuilder::default().path("rootfs").build().unwrap())
            .mounts(mounts)
            .build()
            .unwrap()
    }

    fn bundle() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rootfs");
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        let bb = r.join("bin/busybox");
        std::fs::write(&bb, "#!").unwrap();
        std::fs::set_permissions(&bb, std::fs::Permissions::from_mode(0o755)).unwrap();
        // An absolute symlink, as busybox images ship their applets: it must
        // resolve inside the rootfs, not on the host.
        symlink("/bin/busybox", r.join("bin/sh")).unwrap();
        symlink("/etc/shadow", r.join("bin/hostfile")).unwrap();
        std::fs::write(r.join("bin/data"), "x").unwrap();
        d
    }

    #[test]
    fn finds_executables_like_runc() {
        let b = bundle();
        let ok = |args: &[&str], env: &[&str], mounts: &[&str]| {
            check(b.path(), &spec(args, env, mounts))
        };
        assert!(ok(&["sh"], &["PATH=/usr/bin:/bin"], &[]).is_ok());
        assert!(ok(&["/bin/sh"], &[], &[]).is_ok());
        assert!(ok(&["busybox"], &[], &[]).is_ok(), "default PATH");
        assert!(ok(&["../../bin/busybox"], &[], &[]).is_ok(), "no escape");
        // Under a mount the rootfs cannot tell.
        assert!(ok(&["/opt/tool"], &[], &["/opt"]).is_ok());
        assert!(ok(&["tool"], &["PATH=/opt"], &["/opt"]).is_ok());

        let e = ok(&["nope"], &["PATH=/bin"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "exec: \"nope\": executable file not found in $PATH"
        );
        let e = ok(&["/bin/nope"], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("no such file or directory"), "{e}");
        // A host file reached through a symlink is not the container's.
        assert!(ok(&["/bin/hostfile"], &[], &[]).is_err());
        let e = ok(&["/bin/data"], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{e}");
        let e = ok(&[], &[], &[]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
    }
}
