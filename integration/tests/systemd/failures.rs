//! A create runsc's systemd driver refuses leaves nothing behind.

use crate::Containerd;

#[test]
#[ignore = "needs systemd and cgroup v2: make vm runs it"]
fn a_cgroup_path_systemd_refuses_fails_the_create_and_leaves_nothing() {
    let c = Containerd::start();
    let cfg = c.dir().join("runsc.toml");
    std::fs::write(&cfg, "[runsc_config]\nsystemd-cgroup = \"true\"\n").unwrap();
    let id = format!("sdbad{}", std::process::id());
    // A bare slice is no `slice:prefix:name`: runsc's systemd driver
    // refuses it after taking its lock.
    let out = c.run(
        &id,
        &[
            "--runtime-config-path",
            cfg.to_str().unwrap(),
            "--cgroup",
            "kubepods-besteffort-podx.slice",
        ],
        &["true"],
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("systemd path"), "{err}");
    // stop_and_check fails on runsc state (its lock file too), processes
    // or mounts left.
    c.stop_and_check();
}
