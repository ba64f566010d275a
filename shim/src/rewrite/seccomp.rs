//! A spec's `linux.seccomp` made one runsc's `--oci-seccomp` can run.
//!
//! runsc (0.0~20221219 and 0.0~20240729 alike) applies the profile inside
//! the sandbox to the container's process and its descendants, and knows
//! only the actions KILL, TRAP, ERRNO, TRACE and ALLOW; any other action
//! fails the container's start. Its ERRNO always returns EPERM. So:
//!
//! - LOG (allow and log) becomes ALLOW; KILL_PROCESS and KILL_THREAD
//!   become KILL (runsc kills the thread); NOTIFY (a user-space agent the
//!   sandbox cannot reach) becomes ERRNO;
//! - a rule answering ENOSYS ("pretend it does not exist", as containerd's
//!   and Docker's default profiles do for `clone3` so that glibc falls back
//!   to `clone`) becomes ALLOW: gVisor answers ENOSYS itself for what it
//!   lacks, where EPERM would make glibc fail instead of falling back.
//!
//! Other ERRNO values stay ERRNO, answered as EPERM.

use serde_json::Value;

const ENOSYS: u64 = 38;

/// What [`fit_for_runsc`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeccompFit {
    /// Actions runsc does not know, and what they became.
    pub actions: Vec<(String, &'static str)>,
    /// Rules answering ENOSYS made ALLOW (their first syscall names).
    pub enosys_allowed: Vec<String>,
}

impl SeccompFit {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.actions.is_empty() || !self.enosys_allowed.is_empty()
    }
}

/// What runsc runs for `action`, if it is not `action` itself.
fn known_action(action: &str) -> Option<&'static str> {
    match action {
        "SCMP_ACT_LOG" => Some("SCMP_ACT_ALLOW"),
        "SCMP_ACT_KILL_PROCESS" | "SCMP_ACT_KILL_THREAD" => Some("SCMP_ACT_KILL"),
        "SCMP_ACT_NOTIFY" => Some("SCMP_ACT_ERRNO"),
        _ => None,
    }
}

/// Rewrites `linux.seccomp` (if any) as described in the module docs.
pub fn fit_for_runsc(spec: &mut Value) -> SeccompFit {
    let mut fit = SeccompFit::default();
    let Some(seccomp) = spec
        .get_mut("linux")
        .and_then(|l| l.get_mut("seccomp"))
        .filter(|s| s.is_object())
    else {
        return fit;
    };
    let mut swap = |holder: &mut Value, key: &str| {
        let Some(action) = holder.get(key).and_then(Value::as_str) else {
            return;
        };
        if let Some(to) = known_action(action) {
            fit.actions.push((action.to_string(), to));
            holder[key] = Value::from(to);
        }
    };
    swap(seccomp, "defaultAction");
    let mut enosys = Vec::new();
    if let Some(rules) = seccomp.get_mut("syscalls").and_then(Value::as_array_mut) {
        for rule in rules {
            swap(rule, "action");
            let errno = rule.get("errnoRet").and_then(Value::as_u64);
            if rule.get("action").and_then(Value::as_str) == Some("SCMP_ACT_ERRNO")
                && errno == Some(ENOSYS)
            {
                rule["action"] = Value::from("SCMP_ACT_ALLOW");
                if let Some(o) = rule.as_object_mut() {
                    o.remove("errnoRet");
                }
                let name = rule["names"][0].as_str().unwrap_or("?").to_string();
                enosys.push(name);
            }
        }
    }
    fit.enosys_allowed = enosys;
    fit
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_profile_becomes_one_runsc_runs() {
        let mut spec = json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "syscalls": [
                {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["uname"], "action": "SCMP_ACT_LOG"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            ],
        }}});
        let fit = fit_for_runsc(&mut spec);
        let rules = &spec["linux"]["seccomp"]["syscalls"];
        assert_eq!(rules[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(
            rules[1],
            json!({"names": ["clone3"], "action": "SCMP_ACT_ALLOW"})
        );
        assert_eq!(rules[2]["action"], "SCMP_ACT_KILL");
        assert_eq!(rules[3]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(fit.enosys_allowed, ["clone3"]);
        assert_eq!(fit.actions.len(), 2);
    }

    #[test]
    fn a_spec_without_a_profile_is_left_alone() {
        let mut spec = json!({"linux": {"namespaces": []}});
        let before = spec.clone();
        assert!(!fit_for_runsc(&mut spec).changed());
        assert_eq!(spec, before);
        let mut log_all = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_LOG"}}});
        assert!(fit_for_runsc(&mut log_all).changed());
        assert_eq!(
            log_all["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_ALLOW"
        );
    }
}
