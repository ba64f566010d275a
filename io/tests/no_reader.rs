//! A client whose reader never opens its FIFO wedges nothing: no thread
//! stays blocked and the runtime shuts down promptly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use shim_io::{ProcessIo, RelayMode};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn reader_never_opens() {
    let before = threads();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for mode in [RelayMode::Direct, RelayMode::Copy] {
            let dir = tempfile::tempdir().unwrap();
            let (i, o, e) = (
                fifo(dir.path(), "i"),
                fifo(dir.path(), "o"),
                fifo(dir.path(), "e"),
            );
            let io = ProcessIo::open(
                cfg(
                    i.to_str().unwrap(),
                    o.to_str().unwrap(),
                    e.to_str().unwrap(),
                    false,
                ),
                mode,
            )
            .await
            .unwrap();
            // 4 MiB into a FIFO nobody reads: the writer blocks in the kernel.
            let c = spawn(
                io.take_runtime_stdio(),
                &[BB, "head", "-c", "4194304", "/dev/zero"],
            )
            .await;
            io.started().await.unwrap();
            // Let the writer fill the FIFO and block.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let t0 = Instant::now();
            io.drain(Duration::from_millis(300)).await;
            assert!(t0.elapsed() < Duration::from_secs(2));
            io.close().await;
            // With the shim's references gone the writer gets EPIPE and exits.
            let st = tokio::time::timeout(Duration::from_secs(5), wait(c)).await;
            assert!(st.is_ok(), "{mode:?}: writer still blocked after close");
            drop(io);
        }
    });
    let t0 = Instant::now();
    rt.shutdown_timeout(Duration::from_secs(5));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "runtime shutdown took {:?}",
        t0.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while threads() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(threads(), before, "a thread was left behind");
}
