//! How containerd runs our shim binary for a pod: on containerd 2.3 and
//! later (task API v3) `start` runs once per pod and the members come over
//! the sandbox's connection; before, once per container.

use std::path::Path;

use integration::cri::{Cri, CtrSpec, PodSpec};
use test_support::{configured::containerd_version, containerd::which};

/// containerd's (major, minor) on `PATH`.
fn containerd_release() -> (u32, u32) {
    let bin = which("containerd").expect("containerd on PATH");
    let v = containerd_version(bin.parent().unwrap());
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// A `containerd-shim-runsc-v1` that logs its verb to `log` and runs ours.
fn recording_shim(dir: &Path, log: &Path) {
    let real = test_support::containerd::shim_dir().join("containerd-shim-runsc-v1");
    test_support::host::write_script(
        &dir.join("containerd-shim-runsc-v1"),
        &format!(
            "#!/bin/sh\nfor a; do case $a in start|delete) echo $a >> {};; esac; done\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    );
}

#[test]
fn a_pods_members_start_without_a_shim_start_of_their_own_on_containerd_2_3() {
    let release = containerd_release();
    let rec = tempfile::tempdir().unwrap();
    let log = rec.path().join("verbs");
    recording_shim(rec.path(), &log);
    let mut cri = Cri::start_with_path(vec![rec.path().to_path_buf()]);
    let pod = cri.run_pod(&PodSpec {
        name: "reuse".into(),
        ..Default::default()
    });
    let a = cri.run_container(&pod, &CtrSpec::sh("a", "echo a-ok; exec sleep 1000"), false);
    let b = cri.run_container(&pod, &CtrSpec::sh("b", "exec sleep 1000"), false);
    assert_eq!(cri.exec_ok(&b, &["echo", "b-ok"]), "b-ok\n");
    assert_eq!(cri.exec_ok(&a, &["echo", "a-ok"]), "a-ok\n");
    let starts = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "start")
            .count()
    };
    let want = if release >= (2, 3) { 1 } else { 3 };
    assert_eq!(
        starts(),
        want,
        "containerd {release:?}: shim starts for a pod of a sandbox and 2 members"
    );
    // Teardown leaves no shim behind (checked by stop_and_check) although
    // containerd sends no Shutdown for v3 members.
    cri.stop_and_check();
    assert_eq!(starts(), want);
}
