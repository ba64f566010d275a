//! The runsc client a container uses: which binary, root and deadlines,
//! and the flags every runsc call of it gets (`[runsc_config]` with `%ID%`
//! substituted, and what the spec implies).

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::MetadataExt,
    path::Path,
    sync::Arc,
};

use runsc::{GlobalOpts, LogFormat, NetnsCheck, ProcessMonitor, Runsc, Timeouts};

use crate::{
    error::{Error, Result},
    options::Options,
    spec::Network,
};

/// The runsc client for one container: its binary, `--root`, a JSON log per
/// call in the bundle (where that call's own error text is read back from),
/// the `[runsc_config]` flags after `%ID%` substitution, the deadlines, and
/// each call in a process group of its own (so an overrun kills all of it).
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
        .log_per_call(bundle)
        .cache_dir(&options.root)
        .log_format(LogFormat::Json)
        .pdeath_signal(nix::sys::signal::Signal::SIGKILL)
        .setpgid(true)
        .config_map(flags)
        .timeouts(timeouts(options))
        .monitor(monitor)
        .sandbox_control(sandbox_control(options))
        .build()
}

/// Environment override of `sandbox_control`, for comparing both paths on
/// one configuration (tests, debugging).
pub const SANDBOX_CONTROL_ENV: &str = "RUNSC_SHIM_SANDBOX_CONTROL";

/// The configured sandbox control, unless the environment overrides it.
pub fn sandbox_control(options: &Options) -> runsc::SandboxControl {
    match std::env::var(SANDBOX_CONTROL_ENV) {
        Ok(v) => v.parse().unwrap_or_else(|e| {
            log::warn!("ignoring {SANDBOX_CONTROL_ENV}: {e}");
            options.sandbox_control
        }),
        Err(_) => options.sandbox_control,
    }
}

/// runsc's flag for its in-sandbox rootfs overlay (0.0~20230000 on).
pub const OVERLAY2: &str = "overlay2";
/// runsc's flag applying a spec's seccomp profile inside the sandbox.
pub const OCI_SECCOMP: &str = "oci-seccomp";
/// runsc's flag sizing a sandbox's CPUs from its cgroup's quota.
pub const CPU_NUM_FROM_QUOTA: &str = "cpu-num-from-quota";

/// The default deadlines with the options' overrides (0 ms: none).
pub fn timeouts(options: &Options) -> Timeouts {
    options
        .runsc_timeouts
        .iter()
        .fold(Timeouts::default(), |t, (verb, ms)| {
            let d = (*ms > 0).then(|| std::time::Duration::from_millis(*ms));
            t.set(verb, d)
        })
}

/// The global flags the configured runsc knows (`runsc flags`, cached per
/// binary in memory and in the runsc root for other shims).
pub async fn known_flags(
    options: &Options,
    monitor: Arc<dyn ProcessMonitor>,
) -> Result<Arc<BTreeSet<String>>> {
    GlobalOpts::default()
        .command(&options.binary_name)
        .cache_dir(&options.root)
        .timeouts(timeouts(options))
        .monitor(monitor)
        .build()
        .flags()
        .await
        .map_err(|e| Error::runsc("list the flags of the configured runsc", e))
}

/// Refuses `[runsc_config]` keys the runsc in use does not know: runsc
/// would print its usage on the stdio it was given (the container's) and
/// exit 2 with no error of its own.
pub fn check_runsc_config(options: &Options, known: &BTreeSet<String>) -> Result<()> {
    let unknown: Vec<&str> = options
        .runsc_config
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(*k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "[runsc_config] key{} {} not known to {} (see `{} flags`)",
        if unknown.len() > 1 { "s" } else { "" },
        unknown
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        options.binary_name,
        options.binary_name
    )))
}

/// The flags every runsc call of a container gets: `[runsc_config]` with
/// `%ID%` (sandbox) and `%CID%` (container) substituted, plus the network
/// mode a sandbox's spec implies when the user chose none: a new namespace
/// without a path is what runc makes empty (runsc refuses to run its stack
/// in the host namespace), so `none` (loopback only); no namespace at all
/// means the host's network, so `host`; a namespace path gets runsc's own
/// stack in it. `network` is None for a pod member (the sandbox decides).
pub fn runsc_flags(
    options: &Options,
    sandbox_id: &str,
    container_id: &str,
    network: Option<&Network>,
    pod_cpu_quota: bool,
    known: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut flags = runsc::format_runsc_paths(sandbox_id, container_id, &options.runsc_config);
    // runsc 0.0~20240729 keeps a container's rootfs writes inside the
    // sandbox by default (`--overlay2=root:self`, in a filestore file in
    // the snapshot's upper directory), so a committed snapshot would hold
    // none of them. Writes go to the snapshot, as with 0.0~20221219, unless
    // the user opts into the overlay (`[runsc_config] overlay2 = "root:self"`).
    if known.contains(OVERLAY2) {
        flags
            .entry(OVERLAY2.into())
            .or_insert_with(|| "none".into());
    }
    let implied = match network {
        Some(Network::New) => Some("none"),
        Some(Network::Host) => Some("host"),
        Some(Network::Join(_) | Network::NewFilledByHooks) | None => None,
    };
    if let Some(mode) = implied {
        flags.entry("network".into()).or_insert_with(|| mode.into());
    }
    // A container's seccomp profile holds inside the sandbox, as with runc
    // (gVisor's own filters guard the host either way), unless the user
    // turns it off.
    if known.contains(OCI_SECCOMP) {
        flags
            .entry(OCI_SECCOMP.into())
            .or_insert_with(|| "true".into());
    }
    // A pod with a CPU limit gets as many CPUs as its quota covers.
    if pod_cpu_quota && known.contains(CPU_NUM_FROM_QUOTA) {
        flags
            .entry(CPU_NUM_FROM_QUOTA.into())
            .or_insert_with(|| "true".into());
    }
    flags
}

/// Whether the runsc call that sets up a sandbox's network needs
/// `/proc/sys/net` masked (see [`runsc::netns`]): only when runsc's own
/// stack joins a namespace other than the one the shim runs in (the
/// host's, as containerd's), where its "root network namespace" check is
/// wrong on current kernels. (`/proc/1/ns/net` is not always readable,
/// even by root.)
pub fn netns_check(network: Option<&Network>, flags: &BTreeMap<String, String>) -> NetnsCheck {
    if flags.get("network").is_some_and(|m| m != "sandbox") {
        return NetnsCheck::AsIs;
    }
    let path = match network {
        Some(Network::Join(path)) => path,
        // runsc makes the namespace: never the host's.
        Some(Network::NewFilledByHooks) => return NetnsCheck::MaskProcSysNet,
        Some(Network::New | Network::Host) | None => return NetnsCheck::AsIs,
    };
    let id = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    match (id(path), id(Path::new("/proc/self/ns/net"))) {
        (Some(ns), Some(host)) if ns != host => NetnsCheck::MaskProcSysNet,
        _ => NetnsCheck::AsIs,
    }
}

/// Creates the directories path-like flags will write into.
pub fn create_emitted_dirs(flags: &BTreeMap<String, String>) {
    for dir in runsc::emitted_paths(flags) {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            log::warn!("cannot create {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_mode_follows_the_spec_unless_set() {
        let mut o = Options::default();
        let none = BTreeSet::new();
        let join = Network::Join("/var/run/netns/x".into());
        assert_eq!(
            runsc_flags(&o, "p", "c", Some(&Network::New), false, &none)["network"],
            "none"
        );
        assert_eq!(
            runsc_flags(&o, "p", "c", Some(&Network::Host), false, &none)["network"],
            "host"
        );
        assert!(!runsc_flags(&o, "p", "c", Some(&join), false, &none).contains_key("network"));
        assert!(!runsc_flags(&o, "p", "c", None, false, &none).contains_key("network"));
        o.runsc_config.insert("network".into(), "sandbox".into());
        assert_eq!(
            runsc_flags(&o, "p", "c", Some(&Network::Host), false, &none)["network"],
            "sandbox"
        );
    }

    #[test]
    fn a_pod_with_a_cpu_limit_sees_the_cpus_it_may_use() {
        let mut o = Options::default();
        let knows = BTreeSet::from([CPU_NUM_FROM_QUOTA.to_string()]);
        let none = BTreeSet::new();
        let f = |o: &Options, quota, known: &BTreeSet<String>| {
            runsc_flags(o, "p", "c", None, quota, known)
        };
        assert_eq!(f(&o, true, &knows)[CPU_NUM_FROM_QUOTA], "true");
        assert!(!f(&o, false, &knows).contains_key(CPU_NUM_FROM_QUOTA));
        assert!(!f(&o, true, &none).contains_key(CPU_NUM_FROM_QUOTA));
        o.runsc_config
            .insert(CPU_NUM_FROM_QUOTA.into(), "false".into());
        assert_eq!(f(&o, true, &knows)[CPU_NUM_FROM_QUOTA], "false");
    }

    #[test]
    fn seccomp_profiles_apply_unless_the_user_turns_them_off() {
        let mut o = Options::default();
        let knows = BTreeSet::from([OCI_SECCOMP.to_string()]);
        assert_eq!(
            runsc_flags(&o, "p", "c", None, false, &knows)[OCI_SECCOMP],
            "true"
        );
        assert!(!runsc_flags(&o, "p", "c", None, false, &BTreeSet::new()).contains_key(OCI_SECCOMP));
        o.runsc_config.insert(OCI_SECCOMP.into(), "false".into());
        assert_eq!(
            runsc_flags(&o, "p", "c", None, false, &knows)[OCI_SECCOMP],
            "false"
        );
    }

    #[test]
    fn rootfs_writes_reach_the_snapshot_unless_the_user_opts_in() {
        let mut o = Options::default();
        let knows = BTreeSet::from([OVERLAY2.to_string()]);
        assert_eq!(
            runsc_flags(&o, "p", "c", None, false, &knows)[OVERLAY2],
            "none"
        );
        assert!(!runsc_flags(&o, "p", "c", None, false, &BTreeSet::new()).contains_key(OVERLAY2));
        o.runsc_config.insert(OVERLAY2.into(), "root:self".into());
        assert_eq!(
            runsc_flags(&o, "p", "c", None, false, &knows)[OVERLAY2],
            "root:self"
        );
    }

    #[test]
    fn proc_sys_net_is_masked_only_for_a_foreign_namespace() {
        let none = BTreeMap::new();
        let host = Network::Join("/proc/self/ns/net".into());
        assert_eq!(netns_check(Some(&host), &none), NetnsCheck::AsIs);
        assert_eq!(netns_check(Some(&Network::New), &none), NetnsCheck::AsIs);
        assert_eq!(
            netns_check(Some(&Network::NewFilledByHooks), &none),
            NetnsCheck::MaskProcSysNet
        );
        assert!(!runsc_flags(
            &Options::default(),
            "p",
            "c",
            Some(&Network::NewFilledByHooks),
            false,
            &BTreeSet::new()
        )
        .contains_key("network"));
        assert_eq!(netns_check(None, &none), NetnsCheck::AsIs);
        // A namespace of its own: this test's thread in a new one.
        let t = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let tid = nix::unistd::gettid();
            let own = Network::Join(format!("/proc/self/task/{tid}/ns/net").into());
            let none = BTreeMap::new();
            let off = BTreeMap::from([("network".to_string(), "none".to_string())]);
            (
                netns_check(Some(&own), &none),
                netns_check(Some(&own), &off),
            )
        });
        assert_eq!(
            t.join().unwrap(),
            (NetnsCheck::MaskProcSysNet, NetnsCheck::AsIs)
        );
    }

    #[test]
    fn id_substitution_in_paths() {
        let mut o = Options::default();
        o.runsc_config
            .insert("debug-log".into(), "/var/log/runsc/%ID%/%CID%.log".into());
        let f = runsc_flags(&o, "pod", "c1", None, false, &BTreeSet::new());
        assert_eq!(f["debug-log"], "/var/log/runsc/pod/c1.log");
    }
}
