//! What a container's security context asks that runsc leaves to the shim:
//! masked and read-only paths, its seccomp profile.

use integration::cri::{Cri, CtrSpec, PodSpec};

#[test]
fn masked_and_readonly_paths_hold_in_the_sandbox() {
    let mut cri = Cri::start();
    let p = cri.run_pod(&PodSpec {
        name: "paths".into(),
        ..Default::default()
    });
    let spec = CtrSpec {
        masked_paths: vec!["/etc/group".into(), "/var".into()],
        readonly_paths: vec!["/tmp".into()],
        ..CtrSpec::sh("masked", "exec sleep 1000")
    };
    let id = cri.run_container(&p, &spec, false);
    // A masked file reads empty and cannot be written or run.
    assert_eq!(cri.exec_ok(&id, &["cat", "/etc/group"]), "");
    let run = cri.exec_sync(&id, &["sh", "-c", "/etc/group"], 10).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "sh: /etc/group: Permission denied\n"
    );
    let write = cri
        .exec_sync(&id, &["sh", "-c", "echo x > /etc/group"], 10)
        .unwrap();
    assert_ne!(write.exit_code, 0);
    // A masked directory is empty and read-only.
    assert_eq!(cri.exec_ok(&id, &["ls", "-A", "/var"]), "");
    let touch = cri.exec_sync(&id, &["touch", "/var/x"], 10).unwrap();
    assert_ne!(touch.exit_code, 0);
    // A read-only path, as runc says it.
    let touch = cri.exec_sync(&id, &["touch", "/tmp/test"], 10).unwrap();
    assert_eq!(
        (
            touch.exit_code,
            String::from_utf8_lossy(&touch.stderr).as_ref()
        ),
        (1, "touch: /tmp/test: Read-only file system\n")
    );
    // The rest of the rootfs stays as it was.
    cri.exec_ok(&id, &["touch", "/root/ok"]);
    assert_eq!(
        cri.exec_ok(&id, &["head", "-c", "5", "/etc/passwd"]),
        "root:"
    );
    cri.stop_and_check();
}

#[test]
fn a_seccomp_profile_holds_for_the_containers_process() {
    let mut cri = Cri::start();
    let p = cri.run_pod(&PodSpec {
        name: "seccomp".into(),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("block-chmod.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["chmod", "fchmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["uname"], "action": "SCMP_ACT_LOG"}
        ]}"#,
    )
    .unwrap();
    let script = "uname >/dev/null || exit 9; chmod 400 /tmp";
    let blocked = cri.run_container(
        &p,
        &CtrSpec {
            seccomp_profile: Some(profile),
            ..CtrSpec::sh("blocked", script)
        },
        false,
    );
    let free = cri.run_container(&p, &CtrSpec::sh("free", script), false);
    assert_eq!(cri.wait_exited(&blocked).exit_code, 1);
    let log = std::fs::read_to_string(cri.log_of(&p.1, "blocked")).unwrap();
    assert!(log.contains("Operation not permitted"), "{log}");
    // The same script without the profile.
    assert_eq!(cri.wait_exited(&free).exit_code, 0);
    cri.stop_and_check();
}
