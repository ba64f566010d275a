//! Direct and Copy mode with real FIFOs and a child standing in for runsc.
#![allow(clippy::unwrap_used)]

mod common;

use std::{fs::OpenOptions, io::Write, sync::Arc, time::Duration};

use common::*;
use shim_io::{ProcessIo, RelayMode};

const MODES: [RelayMode; 2] = [RelayMode::Direct, RelayMode::Copy];

async fn integrity(mode: RelayMode, len: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let want = data_file(&data, len);
    let out = fifo(dir.path(), "stdout");
    let io = ProcessIo::open(cfg("", out.to_str().unwrap(), "", false), mode)
        .await
        .unwrap();
    let rd = reader(&out);
    let child = spawn(
        io.take_runtime_stdio(),
        &[BB, "cat", data.to_str().unwrap()],
    )
    .await;
    io.started().await.unwrap();
    assert_eq!(wait(child).await, 0);
    io.drain(Duration::from_secs(30)).await;
    let (l, h, _) = rd.join().unwrap();
    assert_eq!((l, h), want, "{mode:?} {len} bytes");
    io.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_1b_64k_256m() {
    for mode in MODES {
        for len in [1, 64 << 10, 256 << 20] {
            integrity(mode, len).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_stdout_stderr() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (fifo(dir.path(), "o"), fifo(dir.path(), "e"));
        let io = ProcessIo::open(
            cfg("", o.to_str().unwrap(), e.to_str().unwrap(), false),
            mode,
        )
        .await
        .unwrap();
        let (ro, re) = (reader(&o), reader(&e));
        let script = "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo out$i; echo err$i >&2; done";
        let c = spawn(io.take_runtime_stdio(), &[BB, "sh", "-c", script]).await;
        io.started().await.unwrap();
        assert_eq!(wait(c).await, 0);
        io.drain(Duration::from_secs(10)).await;
        let want = |p: &str| (1..=2000).map(|i| format!("{p}{i}\n")).collect::<String>();
        assert_eq!(
            String::from_utf8(ro.join().unwrap().2).unwrap(),
            want("out"),
            "{mode:?}"
        );
        assert_eq!(
            String::from_utf8(re.join().unwrap().2).unwrap(),
            want("err"),
            "{mode:?}"
        );
        io.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_path_for_stdout_and_stderr() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let o = fifo(dir.path(), "o");
        let p = o.to_str().unwrap();
        let io = ProcessIo::open(cfg("", p, p, false), mode).await.unwrap();
        let ro = reader(&o);
        let c = spawn(
            io.take_runtime_stdio(),
            &[BB, "sh", "-c", "echo a; echo b >&2; echo c"],
        )
        .await;
        io.started().await.unwrap();
        wait(c).await;
        io.drain(Duration::from_secs(10)).await;
        assert_eq!(ro.join().unwrap().2, b"a\nb\nc\n", "{mode:?}");
        io.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_eof_on_close_io_or_client_close() {
    for mode in MODES {
        // CloseIO while the client keeps its side open: what it wrote is
        // forwarded, then the process sees EOF.
        let dir = tempfile::tempdir().unwrap();
        let (i, o) = (fifo(dir.path(), "i"), fifo(dir.path(), "o"));
        let io = ProcessIo::open(
            cfg(i.to_str().unwrap(), o.to_str().unwrap(), "", false),
            mode,
        )
        .await
        .unwrap();
        let ro = reader(&o);
        let mut c = spawn(io.take_runtime_stdio(), &[BB, "sh", "-c", "cat; echo EOF"]).await;
        io.started().await.unwrap();
        let mut w = OpenOptions::new().write(true).open(&i).unwrap();
        w.write_all(b"hello\n").unwrap();
        let early = tokio::time::timeout(Duration::from_millis(500), &mut c.1).await;
        assert!(
            early.is_err(),
            "{mode:?}: stdin EOF while the client is attached"
        );
        io.close_stdin();
        io.close_stdin();
        assert_eq!(wait(c).await, 0);
        drop(w);
        io.drain(Duration::from_secs(10)).await;
        assert_eq!(ro.join().unwrap().2, b"hello\nEOF\n", "{mode:?}");
        io.close().await;

        // The client closes without CloseIO (ctr's race loses it): the
        // process must still see EOF, not block forever.
        let dir = tempfile::tempdir().unwrap();
        let (i, o) = (fifo(dir.path(), "i"), fifo(dir.path(), "o"));
        let io = ProcessIo::open(
            cfg(i.to_str().unwrap(), o.to_str().unwrap(), "", false),
            mode,
        )
        .await
        .unwrap();
        let ro = reader(&o);
        let c = spawn(io.take_runtime_stdio(), &[BB, "sh", "-c", "cat; echo EOF"]).await;
        io.started().await.unwrap();
        // Nobody has opened the writer yet: no premature EOF.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut w = OpenOptions::new().write(true).open(&i).unwrap();
        w.write_all(b"bye\n").unwrap();
        drop(w);
        assert_eq!(wait(c).await, 0);
        io.drain(Duration::from_secs(10)).await;
        assert_eq!(ro.join().unwrap().2, b"bye\nEOF\n", "{mode:?}");
        io.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_idempotent_from_many_tasks() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let (i, o, e) = (
            fifo(dir.path(), "i"),
            fifo(dir.path(), "o"),
            fifo(dir.path(), "e"),
        );
        let io = Arc::new(
            ProcessIo::open(
                cfg(
                    i.to_str().unwrap(),
                    o.to_str().unwrap(),
                    e.to_str().unwrap(),
                    false,
                ),
                mode,
            )
            .await
            .unwrap(),
        );
        let tasks: Vec<_> = (0..6)
            .map(|n| {
                let io = io.clone();
                tokio::spawn(async move {
                    io.close_stdin();
                    if n % 2 == 0 {
                        io.close().await;
                    }
                    io.close_stdin();
                    io.close().await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        io.drain(Duration::from_millis(100)).await;
        io.close().await;
        assert!(io.take_runtime_stdio().stdout.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reader_gets_every_byte() {
    for mode in MODES {
        // 4 MiB: the writer blocks until the reader shows up.
        // 64 KiB: the writer has exited before the reader opens.
        for len in [4 << 20, 64 << 10] {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let want = data_file(&data, len);
            let out = fifo(dir.path(), "stdout");
            let io = ProcessIo::open(cfg("", out.to_str().unwrap(), "", false), mode)
                .await
                .unwrap();
            let c = spawn(
                io.take_runtime_stdio(),
                &[BB, "cat", data.to_str().unwrap()],
            )
            .await;
            io.started().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let rd = reader(&out);
            assert_eq!(wait(c).await, 0);
            io.drain(Duration::from_secs(10)).await;
            let (l, h, _) = rd.join().unwrap();
            assert_eq!((l, h), want, "{mode:?} {len}");
            io.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_every_byte_past_the_copy_deadline() {
    for mode in MODES {
        // 3 MiB read at ~0.6 MiB/s: far longer than the 1 s drain bound,
        // which is for holders that never let go, not for slow readers.
        let len = 3 << 20;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let want = data_file(&data, len);
        let out = fifo(dir.path(), "stdout");
        let io = ProcessIo::open(cfg("", out.to_str().unwrap(), "", false), mode)
            .await
            .unwrap();
        let rd = paced_reader(&out, 16 << 10, Duration::from_millis(25));
        let c = spawn(
            io.take_runtime_stdio(),
            &[BB, "cat", data.to_str().unwrap()],
        )
        .await;
        io.started().await.unwrap();
        assert_eq!(wait(c).await, 0);
        io.drain(Duration::from_secs(1)).await;
        let (l, h, _) = rd.join().unwrap();
        assert_eq!((l, h), want, "{mode:?}");
        io.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_after_exit_timeout_with_grandchild() {
    let dir = tempfile::tempdir().unwrap();
    let out = fifo(dir.path(), "stdout");
    let io = ProcessIo::open(cfg("", out.to_str().unwrap(), "", false), RelayMode::Copy)
        .await
        .unwrap();
    let rd = reader(&out);
    let c = spawn(
        io.take_runtime_stdio(),
        &[BB, "sh", "-c", "sleep 8 & echo done"],
    )
    .await;
    io.started().await.unwrap();
    assert_eq!(wait(c).await, 0);
    let t0 = std::time::Instant::now();
    io.drain(Duration::from_secs(2)).await;
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "drain took {:?}",
        t0.elapsed()
    );
    // The consumer got every byte and EOF although `sleep` still holds the pipe.
    assert_eq!(rd.join().unwrap().2, b"done\n");
    io.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_io() {
    let io = ProcessIo::open(cfg("", "", "", false), RelayMode::Direct)
        .await
        .unwrap();
    let rt = io.take_runtime_stdio();
    assert!(rt.stdin.is_none() && rt.stdout.is_none() && rt.stderr.is_none());
    assert!(io.console_socket().is_none());
    io.started().await.unwrap();
    io.drain(Duration::from_millis(10)).await;
    io.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_fifo_error_names_path() {
    let e = ProcessIo::open(
        cfg("", "/nonexistent/x/stdout", "", false),
        RelayMode::Direct,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("open stdout fifo /nonexistent/x/stdout: "),
        "{e}"
    );
}
