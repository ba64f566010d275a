//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpus ([`TARGETS`], by target name): each feeds raw bytes
//! to the parsers of one kind of input from outside the shim, as the bytes
//! would arrive. Any input may be refused; none may panic or hang. Nothing
//! here touches the host: no file an input names is read.

use std::path::Path;

use containerd_shim::protos::protobuf::Message;
use oci_spec::runtime::{LinuxResources, Process, Spec};
use serde_json::Value;

use crate::{
    cgroup::{self, systemd, Mode},
    container::Role,
    handshake::Handshake,
    options::{self, Options, TaskApiChoice},
    rewrite::{self, paths::PathKind},
    spec,
};

/// What a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (a file `fuzz/fuzz_targets/<name>.rs` and a
/// seed corpus `fuzz/corpus/<name>/`) and what it runs.
pub const TARGETS: &[(&str, Target)] = &[
    ("handshake", handshake),
    ("runtime_options", runtime_options),
    ("runsc_toml", runsc_toml),
    ("spec_rewrite", spec_rewrite),
    ("exec_spec", exec_spec),
    ("update_resources", update_resources),
    ("cgroup_files", cgroup_files),
    ("stdio_uri", stdio_uri),
    ("runsc_state_file", runsc::fuzz::state_file),
    ("runsc_cli_json", runsc::fuzz::cli_json),
    ("runsc_cli_text", runsc::fuzz::cli_text),
    ("runsc_control_reply", runsc::fuzz::control_reply),
    ("runsc_exec_process", runsc::fuzz::exec_process),
];

/// What containerd writes to `shim start`'s standard input, and the reply
/// made for it.
pub fn handshake(data: &[u8]) {
    let Ok(h) = Handshake::parse(data) else {
        return;
    };
    for choice in [TaskApiChoice::Auto, TaskApiChoice::V2] {
        let api = h.task_api(choice);
        let _ = h.reply("unix:///run/containerd/s/0", api);
    }
    let _ = h.socket_address("/run/containerd/containerd.sock", "k8s.io", "pod");
    if let Some(any) = &h.options {
        let _ = Options::is_runtime_options(&any.type_url);
        runtime_options(&any.value);
    }
}

/// The runtime options' protobuf payloads (CRI's `runtimeoptions.v1`,
/// runc's `Options` and `CreateOptions`), decoded without reading the files
/// they name.
pub fn runtime_options(data: &[u8]) {
    let _ = options::decode_runtime_options(data);
    let _ = options::decode_runc_create_options(data);
    let _ = containerd_shim::protos::shim::oci::Options::parse_from_bytes(data);
}

/// A `runsc.toml` (the `ConfigPath` of the runtime options).
pub fn runsc_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(o) = Options::from_toml(text, "fuzz.toml") {
            let _ = o.runsc_root("k8s.io");
        }
    }
}

/// A container's `config.json`: every rewrite, as a sandbox and as a pod
/// member, then what the shim reads off the typed spec.
pub fn spec_rewrite(data: &[u8]) {
    let Ok(original) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // A stand-in for the rootfs: the kind of a path is a function of it.
    let kind = |p: &str| match p.len() % 3 {
        0 => None,
        1 => Some(PathKind::Dir),
        _ => Some(PathKind::File),
    };
    let member = Role::Member {
        sandbox_id: "sandbox".into(),
    };
    for (role, sandbox_pid) in [(&Role::Sandbox, None), (&member, Some(42))] {
        let mut v = original.clone();
        let ctx = rewrite::Context {
            role,
            sandbox_pid,
            release: Some(20240729),
            kubelet_pods: Path::new("/nonexistent/kubelet/pods"),
            rootfs: Path::new("/nonexistent/rootfs"),
            rootfs_kind: &kind,
            masked_file: Path::new("/nonexistent/masked"),
        };
        let _ = rewrite::apply(&mut v, &ctx);
        let _ = rewrite::capabilities::unknown_capabilities(&v, Some(20221219));
        if let Ok(s) = serde_json::from_value::<Spec>(v) {
            let _ = spec::network(&s);
            let _ = spec::unshareable_host_namespaces(&s);
            let annotations = s.annotations().as_ref();
            let _ = spec::grouping_key("c", annotations);
            let _ = spec::is_sub_container(annotations);
            let _ = spec::is_pod_sandbox(annotations);
        }
    }
}

/// An exec's process spec (`ExecProcessRequest.spec`), completed from a
/// container's process as runsc completes it.
pub fn exec_spec(data: &[u8]) {
    let Ok(mut process) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let container = serde_json::json!({
        "cwd": "/work",
        "env": ["PATH=/bin", "HOME=/root"],
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
        "user": {"uid": 0, "gid": 0}
    });
    let _ = rewrite::exec::needs_container(&process);
    let _ = rewrite::exec::complete(&mut process, &container);
    if let Ok(mut p) = serde_json::from_value::<Process>(process) {
        let _ = rewrite::capabilities::drop_unknown_from_process(&mut p, Some(20221219));
    }
}

/// `UpdateTaskRequest.resources`: the limits as cgroup writes and as
/// systemd unit properties.
pub fn update_resources(data: &[u8]) {
    if let Ok(r) = serde_json::from_slice::<LinuxResources>(data) {
        let _ = systemd::properties(&r, Mode::V1);
        let _ = systemd::properties(&r, Mode::V2);
        if let Some(shares) = r.cpu().as_ref().and_then(|c| c.shares()) {
            let w = cgroup::shares_to_weight(shares);
            assert!((1..=10_000).contains(&w), "cpu weight {w} out of range");
        }
    }
}

/// Host cgroup files the shim reads itself (`memory.events`, `cpu.stat`,
/// a cgroup path naming a systemd unit).
pub fn cgroup_files(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cgroup::keyed(text);
        let _ = systemd::unit_of_cgroup(text);
    }
}

/// A stdio URI of `CreateTaskRequest` or `ExecProcessRequest`.
pub fn stdio_uri(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = shim_io::uri::parse(text);
    }
}
