//! Building the runsc client a container uses, and small host adjustments.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use runsc::{GlobalOpts, LogFormat, ProcessMonitor, Runsc};

use crate::options::Options;

/// The runsc client for one container: its binary, `--root`, a JSON log in
/// the bundle (where runsc's own error text is read back from) and the
/// `[runsc_config]` flags after `%ID%` substitution.
pub fn build_runsc(
    options: &Options,
    root: &str,
    bundle: &Path,
    flags: BTreeMap<String, String>,
    monitor: Arc<dyn ProcessMonitor>,
) -> Runsc {
    GlobalOpts::default()
        .command(&options.binary_name)
        .root(root)
        .log(bundle.join("log.json"))
        .log_format(LogFormat::Json)
        .pdeath_signal(nix::sys::signal::Signal::SIGKILL)
        .config_map(flags)
        .monitor(monitor)
        .build()
}

/// The same client without `--log`: for a cleanup that may outlive the
/// bundle (containerd removes it right after Delete and Shutdown).
pub fn without_log(r: &Runsc) -> Runsc {
    let mut g = GlobalOpts::default()
        .command(r.command())
        .log_format(LogFormat::Json)
        .pdeath_signal(nix::sys::signal::Signal::SIGKILL)
        .config_map(r.config().clone())
        .monitor(r.monitor().clone());
    if let Some(root) = r.root() {
        g = g.root(root);
    }
    g.build()
}

/// The flags every runsc call of a container gets: `[runsc_config]` with
/// `%ID%` (sandbox) and `%CID%` (container) substituted, plus
/// `--network=none` when the spec wants a private network namespace and the
/// user did not choose a network mode.
pub fn runsc_flags(
    options: &Options,
    sandbox_id: &str,
    container_id: &str,
    private_network: bool,
) -> BTreeMap<String, String> {
    let mut flags = runsc::format_runsc_paths(sandbox_id, container_id, &options.runsc_config);
    if private_network && !flags.contains_key("network") {
        flags.insert("network".into(), "none".into());
    }
    flags
}

/// Creates the directories path-like flags will write into.
pub fn create_emitted_dirs(flags: &BTreeMap<String, String>) {
    for dir in runsc::emitted_paths(flags) {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            log::warn!("cannot create {}: {e}", dir.display());
        }
    }
}

/// True if runsc's `root` holds state for container `id`
/// (`<sandbox>_sandbox:<id>.state`).
pub fn runsc_knows(root: &str, id: &str) -> bool {
    let suffix = format!(":{id}.state");
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(&suffix))
        })
        .unwrap_or(false)
}

/// Gives the shim server an OOM score one above its parent's, so the kernel
/// picks the shim before containerd. Lowering a score needs CAP_SYS_RESOURCE,
/// which hosts often lack: failures are warnings.
pub fn adjust_oom_score(pid: u32) {
    let parent = std::os::unix::process::parent_id();
    let score = std::fs::read_to_string(format!("/proc/{parent}/oom_score_adj"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let target = (score + 1).min(1000);
    if let Err(e) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), target.to_string()) {
        log::warn!("cannot set oom_score_adj of {pid} to {target}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_none_only_when_unset() {
        let mut o = Options::default();
        assert_eq!(runsc_flags(&o, "p", "c", true)["network"], "none");
        assert!(!runsc_flags(&o, "p", "c", false).contains_key("network"));
        o.runsc_config.insert("network".into(), "host".into());
        assert_eq!(runsc_flags(&o, "p", "c", true)["network"], "host");
    }

    #[test]
    fn id_substitution_in_paths() {
        let mut o = Options::default();
        o.runsc_config
            .insert("debug-log".into(), "/var/log/runsc/%ID%/%CID%.log".into());
        let f = runsc_flags(&o, "pod", "c1", false);
        assert_eq!(f["debug-log"], "/var/log/runsc/pod/c1.log");
    }

    #[test]
    fn runsc_state_lookup() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_str().unwrap();
        assert!(!runsc_knows(root, "c1"));
        std::fs::write(d.path().join("pod_sandbox:c1.state"), "{}").unwrap();
        assert!(runsc_knows(root, "c1"));
        assert!(!runsc_knows(root, "c"));
    }
}
