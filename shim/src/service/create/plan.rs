//! What a Create will do, decided before anything is done: the container's
//! role in its sandbox, its runsc flags and root, how its network is set
//! up and how its stdio is relayed. A function of the request, the spec,
//! the options and the flags the runsc in use knows.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use containerd_shim::{api, protos::types::mount::Mount};
use oci_spec::runtime::Spec;
use shim_io::RelayMode;

use crate::{
    bundle::Bundle,
    client,
    container::Role,
    error::{validate_id, Result},
    options::Options,
    process::StdioPaths,
    rewrite::{pod, resources::PodResources},
    sandbox_root, spec,
};

/// A Create, decided.
#[derive(Debug)]
pub struct Plan {
    /// Container id.
    pub id: String,
    /// Its bundle.
    pub bundle: Bundle,
    /// Its options.
    pub options: Options,
    /// Sandbox or pod member.
    pub role: Role,
    /// Flags every runsc call of it gets.
    pub flags: BTreeMap<String, String>,
    /// How the call that sets up the sandbox's network sees `/proc/sys/net`.
    pub netns_check: runsc::NetnsCheck,
    /// runsc's `--root`.
    pub root: String,
    /// Where the sandbox's user log goes (`--user-log`), for a pod.
    pub user_log: Option<PathBuf>,
    /// The spec's `cgroupsPath`.
    pub cgroups_path: Option<PathBuf>,
    /// The rootfs mounts containerd asked for.
    pub rootfs: Vec<Mount>,
    /// The stdio containerd asked for.
    pub stdio: StdioPaths,
    /// How output reaches the client.
    pub relay: RelayMode,
    /// The checkpoint to restore from at Start, instead of `runsc create`.
    pub restore_from: Option<String>,
    /// The terminal size the spec asks for.
    pub console_size: Option<(u32, u32)>,
    /// The pod's network namespace, where runsc's own stack runs: the
    /// shim forwards ports into it (see [`crate::portforward`]).
    pub pod_netns: Option<PathBuf>,
    /// Host namespaces the spec asks for that gVisor cannot share.
    pub unshared_host_namespaces: Vec<&'static str>,
}

impl Plan {
    /// Whether `runsc create` makes the container now (not a restore).
    pub fn creates(&self) -> bool {
        self.restore_from.is_none()
    }

    /// The sandbox this container belongs to.
    pub fn sandbox_id(&self) -> &str {
        match &self.role {
            Role::Sandbox => &self.id,
            Role::Member { sandbox_id } => sandbox_id,
        }
    }
}

/// Decides the Create `req` of a container whose spec is `spec`, in
/// containerd namespace `namespace`, with a runsc that knows `known` flags.
pub fn plan(
    req: &api::CreateTaskRequest,
    spec: &Spec,
    options: Options,
    namespace: &str,
    known: &BTreeSet<String>,
) -> Result<Plan> {
    validate_id("container", &req.id)?;
    client::check_runsc_config(&options, known)?;
    let id = req.id.clone();
    let annotations = spec.annotations().as_ref();
    let sandbox_id = spec::grouping_key(&id, annotations);
    // It names a directory: the same rules as any id.
    validate_id("sandbox", &sandbox_id)?;
    let role = if spec::is_sub_container(annotations) {
        Role::Member { sandbox_id }
    } else {
        Role::Sandbox
    };
    // A member's network, host namespaces and pod-wide settings are its
    // sandbox's.
    let (network, pod_cpu_quota, logs, host_ns) = match role {
        Role::Sandbox => (
            Some(spec::network(spec)),
            PodResources::from_annotations(annotations).has_cpu_quota(),
            pod::sandbox_logs(annotations),
            spec::unshareable_host_namespaces(spec),
        ),
        Role::Member { .. } => (None, false, None, Vec::new()),
    };
    let sandbox = match &role {
        Role::Sandbox => id.as_str(),
        Role::Member { sandbox_id } => sandbox_id.as_str(),
    };
    let mut flags = client::runsc_flags(
        &options,
        sandbox,
        &id,
        network.as_ref(),
        pod_cpu_quota,
        known,
    );
    let user_log = logs.map(|(user, panic)| {
        flags
            .entry("panic-log".into())
            .or_insert_with(|| panic.to_string_lossy().into_owned());
        user
    });
    let netns_check = client::netns_check(network.as_ref(), &flags);
    // Only a pod's namespace: no host process shares it, so the nat rule
    // there catches containerd's port-forward dial and nothing else.
    let pod_netns = match (&network, netns_check) {
        (Some(spec::Network::Join(path)), runsc::NetnsCheck::MaskProcSysNet)
            if spec::is_pod_sandbox(annotations) =>
        {
            Some(path.clone())
        }
        _ => None,
    };
    let root = sandbox_root::sandbox_root(&options, namespace, sandbox);
    let stdio = StdioPaths {
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
    };
    // A member's gofer inherits `runsc start`'s stdio and outlives the
    // process; copying keeps it off the client's FIFOs.
    let relay = match role {
        Role::Sandbox => RelayMode::Direct,
        Role::Member { .. } => RelayMode::Copy,
    };
    Ok(Plan {
        bundle: Bundle::new(&req.bundle),
        cgroups_path: spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
        rootfs: req.rootfs.clone(),
        restore_from: (!req.checkpoint.is_empty()).then(|| req.checkpoint.clone()),
        console_size: console_size(spec).filter(|_| req.terminal),
        unshared_host_namespaces: host_ns,
        pod_netns,
        id,
        options,
        role,
        flags,
        netns_check,
        root,
        user_log,
        stdio,
        relay,
    })
}

/// The terminal size a spec asks for (`process.consoleSize`), if any.
fn console_size(spec: &Spec) -> Option<(u32, u32)> {
    let size = spec.process().as_ref()?.console_size()?;
    Some((
        u32::try_from(size.width()).ok()?,
        u32::try_from(size.height()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    fn req(id: &str) -> api::CreateTaskRequest {
        api::CreateTaskRequest {
            id: id.into(),
            bundle: "/run/b".into(),
            stdout: "/run/b/out".into(),
            ..Default::default()
        }
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"cgroupsPath": "/default/c1", "namespaces": [{"type": "network"}]},
        })
    }

    #[test]
    fn a_container_on_its_own_is_its_sandbox() {
        let p = plan(
            &req("c1"),
            &spec(base()),
            Options::default(),
            "k8s.io",
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(p.role, Role::Sandbox);
        assert_eq!(p.sandbox_id(), "c1");
        assert!(p.root.ends_with("/k8s.io/c1"), "{}", p.root);
        assert_eq!(p.flags.get("network").map(String::as_str), Some("none"));
        assert_eq!(p.relay, RelayMode::Direct);
        assert_eq!(p.cgroups_path, Some(PathBuf::from("/default/c1")));
        assert!(p.creates());
        assert_eq!(p.bundle.config(), PathBuf::from("/run/b/config.json"));
    }

    #[test]
    fn a_pod_member_shares_its_sandbox_root_and_network() {
        let mut s = base();
        s["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": "pod1",
            "io.kubernetes.cri.sandbox-cpu-quota": "50000",
        });
        let p = plan(
            &req("c2"),
            &spec(s),
            Options::default(),
            "k8s.io",
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(
            p.role,
            Role::Member {
                sandbox_id: "pod1".into()
            }
        );
        assert!(p.root.ends_with("/k8s.io/pod1"), "{}", p.root);
        assert!(!p.flags.contains_key("network"), "{:?}", p.flags);
        assert_eq!(p.relay, RelayMode::Copy);
    }

    #[test]
    fn a_pod_sandbox_gets_its_logs_and_cpus() {
        let mut s = base();
        s["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": "pod1",
            "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/p",
            "io.kubernetes.cri.sandbox-cpu-quota": "50000",
            "io.kubernetes.cri.sandbox-cpu-period": "100000",
        });
        let known = BTreeSet::from([client::CPU_NUM_FROM_QUOTA.to_string()]);
        let p = plan(&req("pod1"), &spec(s), Options::default(), "k8s.io", &known).unwrap();
        assert_eq!(p.role, Role::Sandbox);
        assert_eq!(p.user_log, Some("/var/log/pods/p/gvisor.log".into()));
        assert_eq!(p.flags["panic-log"], "/var/log/pods/p/gvisor_panic.log");
        assert_eq!(p.flags[client::CPU_NUM_FROM_QUOTA], "true");
    }

    #[test]
    fn bad_ids_and_unknown_flags_are_refused_before_anything_is_done() {
        let s = spec(base());
        let none = BTreeSet::new();
        let e = plan(&req("../x"), &s, Options::default(), "ns", &none).unwrap_err();
        assert!(matches!(e, crate::Error::InvalidArgument(_)), "{e}");
        let mut o = Options::default();
        o.runsc_config.insert("no-such-flag".into(), "1".into());
        let e = plan(&req("c1"), &s, o, "ns", &none).unwrap_err();
        assert!(e.to_string().contains("no-such-flag"), "{e}");
    }

    #[test]
    fn a_restore_and_a_terminal_size_are_planned() {
        let mut s = base();
        s["process"]["consoleSize"] = serde_json::json!({"height": 40, "width": 120});
        let mut r = req("c1");
        r.terminal = true;
        r.checkpoint = "/images/c1".into();
        let p = plan(&r, &spec(s), Options::default(), "ns", &BTreeSet::new()).unwrap();
        assert_eq!(p.console_size, Some((120, 40)));
        assert_eq!(p.restore_from.as_deref(), Some("/images/c1"));
        assert!(!p.creates());
    }

    #[test]
    fn ports_are_forwarded_into_a_pods_own_namespace_only() {
        let plan_in = |container_type: &'static str| {
            std::thread::spawn(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let path = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
                let mut s = base();
                s["linux"]["namespaces"] = serde_json::json!([{"type": "network", "path": path}]);
                s["annotations"] = serde_json::json!({
                    "io.kubernetes.cri.container-type": container_type,
                    "io.kubernetes.cri.sandbox-id": "pod1",
                });
                let known = BTreeSet::new();
                plan(&req("pod1"), &spec(s), Options::default(), "k8s.io", &known)
                    .unwrap()
                    .pod_netns
                    .is_some()
            })
            .join()
            .unwrap()
        };
        assert!(plan_in("sandbox"));
        // Another runtime's namespace a container joins (Docker's
        // `--network container:`) may hold host processes: left alone.
        assert!(!plan_in("none"));
    }
}
