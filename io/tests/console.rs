//! Terminal mode with a real pty: runsc's part (sending the master over
//! the console socket) is played by the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{IoSlice, Write},
    os::{fd::AsRawFd, unix::net::UnixStream},
    sync::Arc,
    time::Duration,
};

use common::*;
use nix::{
    pty::openpty,
    sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr},
};
use shim_io::{ProcessIo, RelayMode, RuntimeStdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_relay_and_resize() {
    let dir = tempfile::tempdir().unwrap();
    let (i, o) = (fifo(dir.path(), "i"), fifo(dir.path(), "o"));
    let io = ProcessIo::open(
        cfg(i.to_str().unwrap(), o.to_str().unwrap(), "", true),
        RelayMode::Direct,
    )
    .await
    .unwrap();
    assert!(io.terminal() && io.stderr_path().is_empty());
    let sock = io.console_socket().unwrap();
    let rt = io.take_runtime_stdio();
    assert!(rt.stdin.is_none() && rt.stdout.is_none());
    let pty = openpty(None, None).unwrap();
    let s = UnixStream::connect(&sock).unwrap();
    let fds = [pty.master.as_raw_fd()];
    sendmsg::<UnixAddr>(
        s.as_raw_fd(),
        &[IoSlice::new(b"/dev/pts/x")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    drop(pty.master);
    let rd = reader(&o);
    let slave = pty.slave;
    let rt = RuntimeStdio {
        stdin: Some(slave.try_clone().unwrap()),
        stdout: Some(slave.try_clone().unwrap()),
        stderr: Some(slave.try_clone().unwrap()),
    };
    let c = spawn(
        rt,
        &[BB, "sh", "-c", "echo hello; read line; echo got:$line"],
    )
    .await;
    io.started().await.unwrap();
    io.resize(100, 40).unwrap();
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) },
        0
    );
    assert_eq!((ws.ws_col, ws.ws_row), (100, 40));
    drop(slave);
    let mut w = std::fs::OpenOptions::new().write(true).open(&i).unwrap();
    w.write_all(b"abc\n").unwrap();
    assert_eq!(wait(c).await, 0);
    io.drain(Duration::from_secs(5)).await;
    let out = String::from_utf8_lossy(&rd.join().unwrap().2).into_owned();
    assert!(out.contains("hello") && out.contains("got:abc"), "{out:?}");
    io.close().await;
    assert!(!sock.exists(), "console socket left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_started_console_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let o = fifo(dir.path(), "o");
    let io = Arc::new(
        ProcessIo::open(cfg("", o.to_str().unwrap(), "", true), RelayMode::Direct)
            .await
            .unwrap(),
    );
    let sock = io.console_socket().unwrap();
    let io2 = io.clone();
    let t = tokio::spawn(async move { io2.started().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = std::time::Instant::now();
    io.close().await;
    let r = tokio::time::timeout(Duration::from_secs(2), t).await;
    assert!(r.is_ok(), "started() did not return after close()");
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop(r);
    drop(io);
    assert!(!sock.parent().unwrap().exists(), "console dir left behind");
}
