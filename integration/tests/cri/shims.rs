//! How containerd runs our shim binary for a pod: on containerd 2.3 and
//! later (task API v3) `start` runs once per pod and the members come over
//! the sandbox's connection; before, once per container.

use integration::cri::{Cri, CriExtras, CtrSpec, PodSpec, RecordingShim};
use test_support::{configured::containerd_version, containerd::which};

/// containerd's (major, minor) on `PATH`.
fn containerd_release() -> (u32, u32) {
    let bin = which("containerd").expect("containerd on PATH");
    let v = containerd_version(bin.parent().unwrap());
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

#[test]
fn a_pods_members_start_without_a_shim_start_of_their_own_on_containerd_2_3() {
    let release = containerd_release();
    let shim = RecordingShim::new();
    let mut cri = Cri::start_with(CriExtras {
        path_first: vec![shim.dir()],
        ..Default::default()
    });
    let pod = cri.run_pod(&PodSpec {
        name: "reuse".into(),
        ..Default::default()
    });
    let a = cri.run_container(&pod, &CtrSpec::sh("a", "exec sleep 1000"), false);
    let b = cri.run_container(&pod, &CtrSpec::sh("b", "exec sleep 1000"), false);
    assert_eq!(cri.exec_ok(&b, &["echo", "b-ok"]), "b-ok\n");
    assert_eq!(cri.exec_ok(&a, &["echo", "a-ok"]), "a-ok\n");
    let want = if release >= (2, 3) { 1 } else { 3 };
    assert_eq!(
        shim.count("start"),
        want,
        "containerd {release:?}: shim starts for a pod of a sandbox and 2 members"
    );
    // Teardown leaves no shim behind (stop_and_check looks) although on
    // task API v3 containerd sends no Shutdown for the members.
    cri.stop_and_check();
    assert_eq!(shim.count("start"), want);
}
