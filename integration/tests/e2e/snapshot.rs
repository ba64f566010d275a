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
    c.ctr_ok(&["snapshots", "view", "writer-view", "writer-committed"]);
    // `mount -t overlay overlay <target> -o lowerdir=<committed>:<image>...`
    let m = c
        .ctr_ok(&["snapshots", "mounts", "/mnt", "writer-view"])
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
    c.ctr_ok(&["snapshots", "rm", "writer-view"]);
    c.ctr_ok(&["containers", "delete", "writer"]);
    c.ctr_ok(&["snapshots", "rm", "writer-committed"]);
    c.stop_and_check();
}
