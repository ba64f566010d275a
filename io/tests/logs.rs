//! `file://` and `binary://` log URIs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use shim_io::{ProcessIo, RelayMode};
use test_support::host::write_script;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_uri_appends_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sub/../c.log");
    let log = dir.path().join(log.file_name().unwrap());
    let uri = format!("file://{}", log.display());
    for (mode, script) in [
        (RelayMode::Direct, "echo one; echo two >&2"),
        (RelayMode::Copy, "echo three"),
    ] {
        let io = ProcessIo::open(cfg("", &uri, &uri, false), mode)
            .await
            .unwrap();
        let c = spawn(io.take_runtime_stdio(), &[BB, "sh", "-c", script]).await;
        io.started().await.unwrap();
        assert_eq!(wait(c).await, 0);
        io.drain(Duration::from_secs(5)).await;
        io.close().await;
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\nthree\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_uri_readiness_env_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let script = dir.path().join("logger.sh");
    write_script(
        &script,
        &format!(
            "#!/bin/busybox sh\n\
             echo \"$CONTAINER_ID $CONTAINER_NAMESPACE $*\" > {d}/env\n\
             sleep 1\n\
             exec 5>&-\n\
             cat <&3 > {d}/out &\n\
             cat <&4 > {d}/err &\n\
             wait\n"
        ),
    );
    let uri = format!("binary://{}?k=v&x=y%20z", script.display());
    let t0 = Instant::now();
    let io = ProcessIo::open(cfg("", &uri, &uri, false), RelayMode::Direct)
        .await
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "open did not wait for readiness"
    );
    let c = spawn(
        io.take_runtime_stdio(),
        &[BB, "sh", "-c", "echo hello; echo oops >&2; echo world"],
    )
    .await;
    io.started().await.unwrap();
    assert_eq!(wait(c).await, 0);
    io.drain(Duration::from_secs(5)).await;
    let t1 = Instant::now();
    io.close().await;
    assert!(
        t1.elapsed() < Duration::from_secs(2),
        "logger did not exit on EOF"
    );
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    assert_eq!(read("env"), "cid ns k v x y z\n");
    assert_eq!(read("out"), "hello\nworld\n");
    assert_eq!(read("err"), "oops\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_logger_that_never_exits_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stuck.sh");
    write_script(&script, "#!/bin/busybox sh\nexec 5>&-\nexec sleep 60\n");
    let uri = format!("binary://{}", script.display());
    let io = ProcessIo::open(cfg("", &uri, "", false), RelayMode::Copy)
        .await
        .unwrap();
    drop(io.take_runtime_stdio());
    io.started().await.unwrap();
    let t0 = Instant::now();
    io.close().await;
    assert!(t0.elapsed() < Duration::from_secs(10));
}
