//! Tests that need systemd as init on cgroup v2 (today's nodes): the shim
//! with runsc's systemd cgroup driver. This host has neither, so they are
//! ignored here and `make vm` runs them (`--include-ignored`) in the Debian
//! 13 VM of `scripts/vm/`.
#![allow(clippy::unwrap_used)]

mod failures;
mod update;

pub use test_support::containerd::Containerd;

/// `systemctl show -p <prop> --value <unit>`.
pub fn unit_property(unit: &str, prop: &str) -> String {
    let out = std::process::Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .unwrap();
    assert!(out.status.success(), "systemctl show {unit}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `systemctl daemon-reload`, which rewrites every unit's cgroup files from
/// what systemd knows.
pub fn daemon_reload() {
    let st = std::process::Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap();
    assert!(st.success());
}
