//! The install tier: what a user installs and copies works as documented.
//!
//! - The README shows every file under `config/` verbatim.
//! - `make install DESTDIR=<tmp>` puts the shim at
//!   `<tmp>/usr/local/bin/containerd-shim-runsc-v1` (mode 0755) and
//!   `config/runsc.toml` at `<tmp>/etc/containerd/runsc.toml`, never over an
//!   existing one.
//! - For each containerd version (the system's, 1.7 and 2.1 from
//!   `scripts/versions.sh`), the documented `config.toml` of its format plus
//!   only private paths loads (`config dump` shows the handler `runsc` with
//!   our options, the CRI plugin is ok) and runs a hostNetwork pod with the
//!   RuntimeClass's handler through the installed binary, with runsc's
//!   state under the root of the documented `runsc.toml` (a copy with that
//!   root made private).
#![allow(clippy::unwrap_used)]

mod pod;

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use test_support::{
    configured::{config_dump, containerd_version, Configured},
    containerd::{which, Containerd, OutputExt, CRI_NAMESPACE},
};

const SHIM: &str = "containerd-shim-runsc-v1";
/// Where the documented configuration points containerd at runsc.toml.
const DOCUMENTED_RUNSC_TOML: &str = "/etc/containerd/runsc.toml";
/// The documented runsc.toml's root line.
const DOCUMENTED_ROOT: &str = r#"root = "/run/containerd/runsc""#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn config_file(name: &str) -> String {
    let p = repo().join("config").join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_readme_shows_every_config_file_verbatim() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    for (name, lang) in [
        ("containerd-1.x.toml", "toml"),
        ("containerd-2.x.toml", "toml"),
        ("runsc.toml", "toml"),
        ("runtimeclass.yaml", "yaml"),
    ] {
        let block = format!("```{lang}\n{}```\n", config_file(name));
        assert!(
            readme.contains(&block),
            "README.md does not show config/{name} verbatim; it should contain:\n{block}"
        );
    }
}

/// The RuntimeClass's handler, which each containerd config must define.
fn handler() -> String {
    let yaml = config_file("runtimeclass.yaml");
    let handler = yaml
        .lines()
        .find_map(|l| l.strip_prefix("handler:"))
        .map(|h| h.trim().to_string());
    handler.expect("runtimeclass.yaml has no handler")
}

#[test]
fn the_runtimeclass_handler_is_the_runtime_each_config_defines() {
    let h = handler();
    assert_eq!(h, integration::cri::HANDLER);
    for name in ["containerd-1.x.toml", "containerd-2.x.toml"] {
        let text = config_file(name).replace('\'', "\"");
        assert!(
            text.contains(&format!(".containerd.runtimes.{h}]")),
            "config/{name} does not define the runtime {h}"
        );
    }
}

/// `make install` with `args` into a fresh DESTDIR, as a user runs it
/// (it builds first; a no-op when the shim is up to date).
fn make_install(args: &[&str]) -> tempfile::TempDir {
    let dest = tempfile::Builder::new()
        .prefix("install-")
        .tempdir()
        .unwrap();
    make_install_into(dest.path(), args);
    dest
}

fn make_install_into(dest: &Path, args: &[&str]) {
    let out = Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("install")
        .arg(format!("DESTDIR={}", dest.display()))
        .args(args)
        // An outer `make test PREFIX=...` must not leak into this one.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("PREFIX")
        .env_remove("RUNSC_TOML")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make install {args:?} failed:\n{}\n{}",
        out.out(),
        out.err()
    );
}

fn assert_installed_shim(bin: &Path) {
    let meta = fs::metadata(bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(meta.is_file(), "{}", bin.display());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o755,
        "{}",
        bin.display()
    );
    // `-v` is how users check what they installed; it needs no containerd.
    let out = Command::new(bin).arg("-v").env_clear().output().unwrap();
    assert!(out.status.success(), "{} -v: {}", bin.display(), out.err());
    assert!(
        out.out().starts_with(&format!("{SHIM}:\n  Version:  ")),
        "{} -v printed {:?}",
        bin.display(),
        out.out()
    );
}

#[test]
fn make_install_puts_the_shim_and_runsc_toml_in_place_and_keeps_an_existing_toml() {
    let dest = make_install(&[]);
    assert_installed_shim(&dest.path().join("usr/local/bin").join(SHIM));
    let toml = dest.path().join("etc/containerd/runsc.toml");
    assert_eq!(
        fs::read_to_string(&toml).unwrap(),
        config_file("runsc.toml")
    );

    // A second install keeps what the user changed.
    fs::write(&toml, "# mine\n").unwrap();
    make_install_into(dest.path(), &[]);
    assert_eq!(fs::read_to_string(&toml).unwrap(), "# mine\n");

    // PREFIX moves the binary; an empty RUNSC_TOML installs no runsc.toml.
    let other = make_install(&["PREFIX=/opt/gvisor", "RUNSC_TOML="]);
    assert_installed_shim(&other.path().join("opt/gvisor/bin").join(SHIM));
    assert!(!other.path().join("etc").exists());
}

/// `scripts/versions.sh`'s directories by name (it fetches what is missing,
/// idempotently), or why they are unavailable.
fn versions() -> &'static Result<HashMap<String, PathBuf>, String> {
    static V: OnceLock<Result<HashMap<String, PathBuf>, String>> = OnceLock::new();
    V.get_or_init(|| {
        let out = Command::new(repo().join("scripts/versions.sh"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("scripts/versions.sh failed: {}", out.err()));
        }
        Ok(out
            .out()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, d)| (n.to_string(), PathBuf::from(d)))
            .collect())
    })
}

/// The containerd `name` from `scripts/versions.sh`, or None (with a note
/// on stderr) when it cannot be had on this machine.
fn fetched(name: &str) -> Option<PathBuf> {
    match versions() {
        Ok(v) if v.get(name).is_some_and(|d| d.join("containerd").is_file()) => {
            v.get(name).cloned()
        }
        Ok(_) => {
            eprintln!("SKIPPED: scripts/versions.sh did not provide {name}");
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: {name} is unavailable: {e}");
            None
        }
    }
}

#[test]
fn the_system_containerd_runs_a_pod_with_the_documented_config() {
    let containerd = which("containerd").expect("containerd not on PATH: run `make deps`");
    documented_config_runs_a_pod(containerd.parent().unwrap());
}

#[test]
fn containerd_1_7_runs_a_pod_with_the_documented_config() {
    if let Some(dir) = fetched("containerd-1.7") {
        documented_config_runs_a_pod(&dir);
    }
}

#[test]
fn containerd_2_1_runs_a_pod_with_the_documented_config() {
    if let Some(dir) = fetched("containerd-2.1") {
        documented_config_runs_a_pod(&dir);
    }
}

#[test]
fn containerd_2_4_runs_a_pod_with_the_documented_config() {
    if let Some(dir) = fetched("containerd-2.4") {
        documented_config_runs_a_pod(&dir);
    }
}

/// What differs between the config formats: the documented file, the CRI
/// runtime table prefix (as `containerd config default` of that version
/// names it) and the private tables.
struct Format {
    file: &'static str,
    runtimes: &'static str,
    /// `[grpc]`, `[ttrpc]`, logs, and every other path the plugins of that
    /// version would share with the host's containerd.
    private: fn(&Path, &Path, &str) -> String,
}

fn format_of(version: &str) -> Format {
    match version.split('.').next() {
        Some("1") => Format {
            file: "containerd-1.x.toml",
            runtimes: r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes"#,
            private: |dir, sock, oom| {
                format!(
                    r#"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_port = "0"
  {oom}
[plugins."io.containerd.grpc.v1.cri".cni]
  conf_dir = "{dir}/cni"
"#,
                    dir = dir.display(),
                    sock = sock.display(),
                )
            },
        },
        Some("2") => Format {
            file: "containerd-2.x.toml",
            runtimes: r#"plugins."io.containerd.cri.v1.runtime".containerd.runtimes"#,
            private: |dir, sock, oom| {
                format!(
                    r#"
[grpc]
  address = '{sock}'
[ttrpc]
  address = '{sock}.ttrpc'
[debug]
  level = 'debug'
[plugins.'io.containerd.internal.v1.opt']
  path = '{dir}/opt'
[plugins.'io.containerd.nri.v1.nri']
  socket_path = '{dir}/nri.sock'
[plugins.'io.containerd.cri.v1.runtime']
  {oom}
[plugins.'io.containerd.cri.v1.runtime'.cni]
  conf_dir = '{dir}/cni'
"#,
                    dir = dir.display(),
                    sock = sock.display(),
                )
            },
        },
        _ => panic!("no documented config for containerd {version}"),
    }
}

/// Without CAP_SYS_RESOURCE (a container host) containerd cannot lower a
/// pod's OOM score; the CRI plugin must then not ask to.
fn oom_setting() -> &'static str {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_RESOURCE: u32 = 24;
    if eff & (1 << CAP_SYS_RESOURCE) == 0 {
        "restrict_oom_score_adj = true"
    } else {
        ""
    }
}

fn documented_config_runs_a_pod(bin_dir: &Path) {
    let version = containerd_version(bin_dir);
    let format = format_of(&version);
    eprintln!(
        "containerd {version} ({}): {}",
        bin_dir.display(),
        format.file
    );
    let documented = config_file(format.file);
    assert_eq!(documented.matches(DOCUMENTED_RUNSC_TOML).count(), 1);

    let install = make_install(&[]);
    let bin = install.path().join("usr/local/bin");
    assert_installed_shim(&bin.join(SHIM));
    let installed_toml = fs::read_to_string(install.path().join("etc/containerd/runsc.toml"))
        .expect("make install installed no runsc.toml");
    assert_eq!(installed_toml, config_file("runsc.toml"));

    let c = Containerd::start_configured(bin_dir, std::slice::from_ref(&bin), |p| {
        let runsc_root = p.dir.join("runsc-root");
        let runsc_toml = p.dir.join("runsc.toml");
        assert_eq!(installed_toml.matches(DOCUMENTED_ROOT).count(), 1);
        let private_root = format!(r#"root = "{}""#, runsc_root.display());
        fs::write(
            &runsc_toml,
            installed_toml.replace(DOCUMENTED_ROOT, &private_root),
        )
        .unwrap();
        fs::create_dir_all(p.dir.join("cni")).unwrap();
        let config = format!(
            "root = \"{}\"\nstate = \"{}\"\n{}{}",
            p.root.display(),
            p.state.display(),
            documented.replace(DOCUMENTED_RUNSC_TOML, &runsc_toml.to_string_lossy()),
            (format.private)(&p.dir, &p.socket, oom_setting()),
        );
        Configured {
            config,
            namespace: CRI_NAMESPACE.into(),
            runsc_root: runsc_root.join(CRI_NAMESPACE),
        }
    });

    // The configuration as this containerd loaded it.
    let dump = config_dump(bin_dir, &c.dir().join("config.toml")).replace('\'', "\"");
    let h = handler();
    let runtime = section(&dump, &format!("{}.{h}", format.runtimes));
    let options = section(&dump, &format!("{}.{h}.options", format.runtimes));
    let config_path = c.dir().join("runsc.toml");
    for (got, want) in [
        (
            &runtime,
            r#"runtime_type = "io.containerd.runsc.v1""#.to_string(),
        ),
        (
            &runtime,
            r#"pod_annotations = ["dev.gvisor.*"]"#.to_string(),
        ),
        (
            &options,
            r#"TypeUrl = "io.containerd.runsc.v1.options""#.to_string(),
        ),
        (
            &options,
            format!(r#"ConfigPath = "{}""#, config_path.display()),
        ),
    ] {
        assert!(
            got.contains(&want),
            "containerd {version} loaded the runtime {h} without {want}:\n{got}"
        );
    }
    let plugins = c.ctr_ok(&["plugins", "ls"]).out();
    assert!(
        plugins.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&"io.containerd.grpc.v1")
                && w.get(1) == Some(&"cri")
                && w.last() == Some(&"ok")
        }),
        "containerd {version}: the CRI plugin is not ok:\n{plugins}\n{}",
        c.log_tail(30)
    );

    // containerd 2.x introspects a runtime (`ctr plugins inspect-runtime`,
    // the CRI plugin's feature checks) by running its shim with `-info`.
    if !version.starts_with("1.") {
        let out = Command::new(bin_dir.join("ctr"))
            .arg("-a")
            .arg(c.socket())
            .args(["-n", c.namespace(), "plugins", "inspect-runtime"])
            .args(["--runtime", "io.containerd.runsc.v1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "inspect-runtime: {}", out.err());
        let info: serde_json::Value = serde_json::from_str(&out.out())
            .unwrap_or_else(|e| panic!("inspect-runtime printed {:?}: {e}", out.out()));
        assert_eq!(info["Name"], "io.containerd.runsc.v1", "{info}");
        assert_eq!(info["Features"]["ociVersionMin"], "1.0.0", "{info}");
    }

    let sandbox = sandbox_image(&dump);
    c.import_pod_images(&sandbox);
    pod::wait_until_cri_sees(&c, &sandbox);
    pod::run_host_network_pod(&c, &h, &bin.join(SHIM), &format!("hello-from-{version}"));
    c.stop_and_check();
}

/// The lines of the table `[<name>]` in a `config dump` (quotes normalised
/// to `"`), up to the next table header.
fn section(dump: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let mut lines = dump.lines().skip_while(|l| l.trim() != header);
    assert!(
        lines.next().is_some(),
        "no {header} in the loaded config:\n{dump}"
    );
    lines
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The CRI plugin's sandbox (pause) image in a `config dump`: 1.x's
/// `sandbox_image`, 2.x's `pinned_images.sandbox`.
fn sandbox_image(dump: &str) -> String {
    dump.lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix("sandbox_image = ")
                .or_else(|| l.strip_prefix("sandbox = "))
        })
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no sandbox image in the loaded config:\n{dump}"))
}
