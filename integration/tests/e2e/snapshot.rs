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
    // A view made by `ctr snapshots view` lives only as long as that ctr
    // (its lease ends with it, and containerd 1.7's collector removes the
    // view at once), so its mounts are printed by the same call:
    // `mount -t overlay overlay <target> -o lowerdir=<committed>:<image>...`.
    // The committed snapshot is a collection root (ctr labels it).
    let m = c
        .ctr_ok(&[
            "snapshots",
            "view",
            "--target",
            "/mnt",
            "writer-view",
            "writer-committed",
        ])
        .out();
    let layer = m
        .split("lowerdir=")
        .nth(1)
        .and_then(|l| l.split([':', ',', ' ']).next())
        .unwrap_or_else(|| panic!("no lowerdir in {m}"))
        .to_string();
    let layer = std::path::Path::new(&layer);
    assert_eq!(
        std::fs::read_to_string(layer.join("data/file")).unwrap_or_default(),
        "written\n",
        "{m}"
    );
    let filestores: Vec<_> = std::fs::read_dir(layer)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".gvisor.filestore"))
        .collect();
    assert!(filestores.is_empty(), "{filestores:?}");
    // Gone already when the collector ran.
    let _ = c.ctr(&["snapshots", "rm", "writer-view"]);
    c.ctr_ok(&["containers", "delete", "writer"]);
    // The view is its child until the collector has removed it (which took
    // over 20 s once, containerd 2.1 in the matrix beside the vm tier).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = c.ctr(&["snapshots", "rm", "writer-committed"]);
        if out.code() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && out.err().contains("with child"),
            "{}",
            out.err()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.stop_and_check();
}
