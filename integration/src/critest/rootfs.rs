//! What the critest images' roots hold beyond busybox: the small C
//! programs ([`HELPERS`], compiled static), `pgrep`, the users and groups of
//! busybox's official image, and the file helpers the image builder uses.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

/// The small programs the images carry, as C sources.
pub(super) const HELPERS: &[(&str, &str)] = &[
    ("nginx", include_str!("c/nginx.c")),
    ("nnp", include_str!("c/nnp.c")),
    ("ipcs", include_str!("c/ipcs.c")),
    ("pause", include_str!("c/pause.c")),
];

/// `pgrep NAME` for the busybox image: the pids whose command name
/// contains NAME; exits 1 when there is none.
pub(super) const PGREP: &str = r#"#!/bin/sh
# pgrep NAME: pids of processes whose name contains NAME (busybox-static has no pgrep).
status=1
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue
  read -r comm < "$d/comm" 2>/dev/null || continue
  case "$comm" in *"$1"*) echo "${d#/proc/}"; status=0 ;; esac
done
exit $status
"#;

/// `/etc/passwd` and `/etc/group` of the busybox image (those of
/// busybox's official image, which critest's e2e busybox is).
pub(super) const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
";
pub(super) const GROUP: &str = "root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
";

pub(super) fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

pub(super) fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Copies `from` to `to` (parents made) with `mode`.
pub(super) fn install(from: &Path, to: &Path, mode: u32) -> Result<(), String> {
    if let Some(p) = to.parent() {
        fs::create_dir_all(p).map_err(err("mkdir"))?;
    }
    fs::copy(from, to).map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(err("chmod"))
}

/// Writes an executable script at `path` (parents made).
pub(super) fn script(path: &Path, text: &str) -> Result<(), String> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(err("mkdir"))?;
    }
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(err("chmod"))
}

/// Where scripts/critest.sh says Debian's dynamic busybox is.
pub const DYNAMIC_BUSYBOX_ENV: &str = "CRITEST_DYNAMIC_BUSYBOX";

/// Copies the shared libraries `binary` loads (as `ldd` lists them) to
/// the same paths under `root`.
fn copy_libraries(binary: &Path, root: &Path) -> Result<(), String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd {}: {e}", binary.display()))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no path.
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(Path::new);
        if let Some(lib) = path {
            let to = root.join(lib.strip_prefix("/").map_err(err("library path"))?);
            install(lib, &to, 0o755)?;
        }
    }
    Ok(())
}

/// The busybox image's root: every applet of a busybox (hard links),
/// `pgrep`, `ipcs`, the users and groups of busybox's official image. The
/// busybox is Debian's dynamic one with its libraries, when
/// [`DYNAMIC_BUSYBOX_ENV`] names it: its shell runs an applet as the
/// program at its path, as the official image's does (busybox-static's
/// runs them in-process, so a masked `/bin/ls` would still run).
pub(super) fn busybox_rootfs(root: &Path, helpers: &Path) -> Result<(), String> {
    let dynamic = std::env::var_os(DYNAMIC_BUSYBOX_ENV).map(std::path::PathBuf::from);
    let busybox = dynamic.clone().unwrap_or_else(test_support::image::busybox);
    install(&busybox, &root.join("bin/busybox"), 0o755)?;
    if dynamic.is_some() {
        copy_libraries(&busybox, root)?;
    }
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet == "busybox" || applet.contains('/') {
            continue;
        }
        // Hard links, as in busybox's official image: masking one applet
        // (critest masks /bin/ls) must not mask the shell with it.
        fs::hard_link(root.join("bin/busybox"), root.join("bin").join(applet))
            .map_err(|e| format!("link {applet}: {e}"))?;
    }
    script(&root.join("bin/pgrep"), PGREP)?;
    install(&helpers.join("ipcs"), &root.join("bin/ipcs"), 0o755)?;
    for (d, mode) in [
        ("tmp", 0o1777),
        ("root", 0o700),
        ("etc", 0o755),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
        ("home", 0o755),
        ("mnt", 0o755),
        ("var/run", 0o755),
        ("var/www", 0o755),
        ("var/spool/mail", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("usr/local/bin", 0o755),
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(|e| format!("mkdir {d}: {e}"))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(err("chmod"))?;
    }
    fs::write(root.join("etc/passwd"), PASSWD).map_err(err("write passwd"))?;
    fs::write(root.join("etc/group"), GROUP).map_err(err("write group"))
}
