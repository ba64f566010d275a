//! Committing a stopped container's snapshot (Docker's and agent services'
//! commit workflow) captures exactly what the container wrote, with either
//! runsc (0.0~20240729 keeps writes inside the sandbox by default).

use crate::{Containerd, OutputExt};

#[test]
fn a_committed_snapshot_holds_the_containers_writes_and_no_filestore() {
    let c = Containerd::start();
    let out = c.ctr(&[
        "run",
        "--runtime",
        crate::RUNTIME,
        crate::IMAGE_REF,
        "writer",
        "sh",
        "-c",
        "mkdir -p /data && echo written > /data/file",
    ]);
    assert_eq!(out.code(), 0, "{}", out.err());
    c.ctr_ok(&["snapshots", "commit", "writer-committed", "writer"]);
    // What the commit added to the image, as the layer a `docker commit`
    // would push. `snapshots diff` makes its views under a lease and
    // removes them itself: a view of `ctr snapshots view` has no lease,
    // and when containerd's collector takes it first the committed
    // snapshot keeps a link to it and can never be removed
    // (containerd/containerd#11908; it failed this test in CI).
    let layer = c.ctr_ok(&["snapshots", "diff", "writer-committed"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("layer.tar.gz");
    std::fs::write(&tarball, &layer).unwrap();
    let tar = |args: &[&str]| {
        let out = std::process::Command::new("tar")
            .args(args)
            .arg(&tarball)
            .output()
            .unwrap();
        assert!(out.status.success(), "tar {args:?}: {}", out.err());
        out.out()
    };
    let entries = tar(&["-tzf"]);
    assert_eq!(tar(&["-xzO", "data/file", "-f"]), "written\n", "{entries}");
    let filestores: Vec<&str> = entries
        .lines()
        .filter(|n| n.contains(".gvisor.filestore"))
        .collect();
    assert!(filestores.is_empty(), "{entries}");
    c.ctr_ok(&["containers", "delete", "writer"]);
    c.ctr_ok(&["snapshots", "rm", "writer-committed"]);
    c.stop_and_check();
}
