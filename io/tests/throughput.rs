//! Throughput of 512 MiB through each mode (printed, not asserted).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use shim_io::{ProcessIo, RelayMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_512m() {
    for mode in [RelayMode::Direct, RelayMode::Copy] {
        let dir = tempfile::tempdir().unwrap();
        let out = fifo(dir.path(), "stdout");
        let io = ProcessIo::open(cfg("", out.to_str().unwrap(), "", false), mode)
            .await
            .unwrap();
        let path = out.clone();
        // Count only: a checksum in a debug build would be the bottleneck.
        let rd = std::thread::spawn(move || {
            use std::io::Read;
            let mut f = std::fs::File::open(path).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                match f.read(&mut buf).unwrap() {
                    0 => return n,
                    k => n += k as u64,
                }
            }
        });
        let t0 = Instant::now();
        let c = spawn(
            io.take_runtime_stdio(),
            &[BB, "dd", "if=/dev/zero", "bs=1M", "count=512"],
        )
        .await;
        io.started().await.unwrap();
        assert_eq!(wait(c).await, 0);
        io.drain(Duration::from_secs(60)).await;
        let len = rd.join().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(len, 512 << 20);
        println!(
            "throughput {mode:?}: 512 MiB in {secs:.3} s = {:.0} MiB/s",
            512.0 / secs
        );
        io.close().await;
    }
}
