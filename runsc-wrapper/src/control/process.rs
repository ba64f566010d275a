//! The sandbox's `control.ExecArgs` built from an OCI process the way
//! `runsc exec --process` builds it: argv, env, cwd, user, capabilities as
//! bit sets (ambient always empty, `CAP_NET_RAW` only with `--net-raw`).

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};
use serde::Serialize;

/// Capability names by number, as the kernel (and gVisor) number them.
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const NET_RAW: u32 = 13;

/// `auth.TaskCapabilities`: one bit per capability number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskCapabilities {
    /// Permitted set.
    pub permitted_caps: u64,
    /// Inheritable set.
    pub inheritable_caps: u64,
    /// Effective set.
    pub effective_caps: u64,
    /// Bounding set.
    pub bounding_caps: u64,
    /// Ambient set (runsc never fills it for exec).
    pub ambient_caps: u64,
}

/// `control.ExecArgs` as JSON (the sandbox fills the namespaces and limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecArgs {
    /// Binary; empty: `argv[0]` resolved through `PATH` in `envv`.
    #[serde(rename = "filename")]
    pub filename: String,
    /// Arguments.
    #[serde(rename = "argv")]
    pub argv: Vec<String>,
    /// Environment.
    #[serde(rename = "envv")]
    pub envv: Vec<String>,
    /// Working directory.
    #[serde(rename = "wd")]
    pub working_directory: String,
    /// User id.
    #[serde(rename = "KUID")]
    pub kuid: u32,
    /// Group id.
    #[serde(rename = "KGID")]
    pub kgid: u32,
    /// Supplementary groups.
    #[serde(rename = "ExtraKGIDs")]
    pub extra_kgids: Vec<u32>,
    /// Capability sets.
    #[serde(rename = "Capabilities")]
    pub capabilities: TaskCapabilities,
    /// The three stdio files are one pty replica.
    #[serde(rename = "StdioIsPty")]
    pub stdio_is_pty: bool,
    /// Guest fd of each passed file (0.0~20240729 requires it; 0.0~20221219
    /// ignores it and maps files to fds 0, 1, 2 in order).
    #[serde(rename = "GuestFDs")]
    pub guest_fds: Vec<i32>,
    /// The container the process joins.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
}

fn bits(set: Option<&std::collections::HashSet<Capability>>, net_raw: bool) -> Result<u64, String> {
    let mut out = 0u64;
    for cap in set.into_iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let n = CAPABILITIES
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("unknown capability {name:?}"))?;
        if n as u32 == NET_RAW && !net_raw {
            continue;
        }
        out |= 1 << n;
    }
    Ok(out)
}

/// Capability bit sets from an OCI capability block.
pub fn task_capabilities(
    caps: Option<&LinuxCapabilities>,
    net_raw: bool,
) -> Result<TaskCapabilities, String> {
    let Some(c) = caps else {
        return Ok(TaskCapabilities::default());
    };
    Ok(TaskCapabilities {
        permitted_caps: bits(c.permitted().as_ref(), net_raw)?,
        inheritable_caps: bits(c.inheritable().as_ref(), net_raw)?,
        effective_caps: bits(c.effective().as_ref(), net_raw)?,
        bounding_caps: bits(c.bounding().as_ref(), net_raw)?,
        ambient_caps: 0,
    })
}

impl ExecArgs {
    /// The arguments `runsc exec --process` would send for `p` in container
    /// `cid`, with three stdio files (or one pty replica passed three times).
    pub fn from_process(cid: &str, p: &Process, net_raw: bool) -> Result<ExecArgs, String> {
        let user = p.user();
        Ok(ExecArgs {
            filename: String::new(),
            argv: p.args().clone().unwrap_or_default(),
            envv: p.env().clone().unwrap_or_default(),
            working_directory: p.cwd().to_string_lossy().into_owned(),
            kuid: user.uid(),
            kgid: user.gid(),
            extra_kgids: user.additional_gids().clone().unwrap_or_default(),
            capabilities: task_capabilities(p.capabilities().as_ref(), net_raw)?,
            stdio_is_pty: p.terminal().unwrap_or(false),
            guest_fds: vec![0, 1, 2],
            container_id: cid.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_args_match_what_runsc_exec_sends() {
        let p: Process = serde_json::from_value(serde_json::json!({
            "args": ["/bin/sh", "-c", "echo hi"],
            "env": ["A=1", "PATH=/bin"],
            "cwd": "/tmp",
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]},
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_NET_RAW"],
                "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
                "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
                "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
                "ambient": ["CAP_KILL"]
            }
        }))
        .unwrap();
        let a = ExecArgs::from_process("c1", &p, false).unwrap();
        // The JSON runsc 0.0~20240729's `runsc exec` was seen sending (the
        // sandbox-filled null fields aside).
        let want = serde_json::json!({
            "filename": "", "argv": ["/bin/sh", "-c", "echo hi"], "envv": ["A=1", "PATH=/bin"],
            "wd": "/tmp", "KUID": 1000, "KGID": 1000, "ExtraKGIDs": [5, 6],
            "Capabilities": {"PermittedCaps": 536871968u64, "InheritableCaps": 536871968u64,
                "EffectiveCaps": 536871968u64, "BoundingCaps": 536871968u64, "AmbientCaps": 0},
            "StdioIsPty": false, "GuestFDs": [0, 1, 2], "ContainerID": "c1"
        });
        assert_eq!(serde_json::to_value(&a).unwrap(), want);
        let raw = ExecArgs::from_process("c1", &p, true).unwrap();
        assert_eq!(raw.capabilities.bounding_caps, 536871968 | (1 << 13));
    }
}
