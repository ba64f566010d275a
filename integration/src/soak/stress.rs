//! How containerd-stress is started. At init it raises its open-file limit
//! to 100000 and panics if it cannot; a root without CAP_SYS_RESOURCE (as
//! here, hard limit 20000) cannot. It is started under a seccomp filter
//! that answers every attempt to set a resource limit with success and
//! changes nothing: its 4 workers need a few hundred descriptors, not
//! 100000. Reading limits is untouched.

use std::{collections::BTreeMap, os::unix::process::CommandExt, process::Command};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// The filter: `prlimit64` with a new limit (argument 2 not NULL) and
/// `setrlimit` return 0 without effect; everything else is allowed.
pub fn limits_unchanged() -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp on {}: {e:?}", std::env::consts::ARCH))?;
    let setting = SeccompCondition::new(2, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| format!("seccomp rule: {e}"))?;
    let rules = BTreeMap::from([
        (libc::SYS_prlimit64, vec![setting]),
        (libc::SYS_setrlimit, vec![]),
    ]);
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(0), arch)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e| format!("seccomp program: {e:?}"))
}

/// Makes `cmd` start under `filter` (with no_new_privs, as seccomp needs).
pub fn apply_on_exec(cmd: &mut Command, filter: BpfProgram) {
    // SAFETY: runs in the child between fork and exec; apply_filter makes
    // two syscalls (prctl, seccomp) on the already built program.
    unsafe {
        cmd.pre_exec(move || seccompiler::apply_filter(&filter).map_err(std::io::Error::other));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The filter at work on a real process: `prlimit` (util-linux) sets a
    // limit above the hard one, which fails without the filter, and reads
    // back the limit unchanged.
    #[test]
    fn a_limit_set_under_the_filter_succeeds_and_changes_nothing() {
        let hard = std::process::Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("sh");
        let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "prlimit --pid $$ --nofile=100000000:100000000 && ulimit -Hn",
        ]);
        apply_on_exec(&mut cmd, limits_unchanged().expect("filter"));
        let out = cmd.output().expect("run under the filter");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hard);
    }
}
