//! The client against a fake control server on a socket file (the
//! 0.0~20240729 layout): requests as runsc sends them, fds passed, and
//! answers that must read as a protocol mismatch.
#![allow(clippy::unwrap_used)]

use std::{
    io::{IoSliceMut, Write},
    os::{fd::AsFd, unix::net::UnixListener},
    thread,
};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::*;

/// Serves one connection per answer: records the request and the number of
/// fds that came with it, then writes `answer`.
fn fake(dir: &Path, answers: Vec<&'static str>) -> thread::JoinHandle<Vec<(String, usize)>> {
    let sock = dir.join("runsc-sb.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let state = serde_json::json!({
        "id": "c1", "status": "running",
        "sandbox": {"id": "sb", "pid": 1, "uid": 0, "gid": 0, "controlSocketPath": sock},
    });
    std::fs::write(dir.join("c1_sandbox:sb.state"), state.to_string()).unwrap();
    thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 65536];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 8]);
            let (n, fds) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let m = recvmsg::<()>(
                    s.as_fd().as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::empty(),
                )
                .unwrap();
                let fds: usize = m
                    .cmsgs()
                    .unwrap()
                    .map(|c| match c {
                        ControlMessageOwned::ScmRights(f) => f.len(),
                        _ => 0,
                    })
                    .sum();
                (m.bytes, fds)
            };
            seen.push((String::from_utf8_lossy(&buf[..n]).into_owned(), fds));
            s.write_all(answer.as_bytes()).unwrap();
        }
        seen
    })
}

async fn open(dir: &Path) -> Sandbox {
    Sandbox::open(dir, "c1", Dialect::R20240729, Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn exec_sends_runscs_request_with_the_stdio_fds() {
    let dir = tempfile::tempdir().unwrap();
    let server = fake(
        dir.path(),
        vec![
            r#"{"success":true,"err":"","result":7}"#,
            r#"{"success":true,"err":"","result":1792}"#,
        ],
    );
    let sb = open(dir.path()).await;
    let p: oci_spec::runtime::Process = serde_json::from_value(
        serde_json::json!({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
    )
    .unwrap();
    let args = ExecArgs::from_process("c1", &p, false).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let fd = null.as_fd();
    assert_eq!(sb.exec(&args, &[fd, fd, fd]).await.unwrap(), 7);
    assert_eq!(sb.wait_pid(7).await.unwrap().code(), 7);
    let seen = server.join().unwrap();
    assert!(
        seen[0].0.starts_with(
            r#"{"method":"containerManager.ExecuteAsync","arg":{"filename":"","argv":["true"]"#
        ),
        "{}",
        seen[0].0
    );
    assert_eq!(seen[0].1, 3);
    assert_eq!(
        seen[1],
        (
            r#"{"method":"containerManager.WaitPID","arg":{"CID":"c1","PID":7}}"#.to_string(),
            0
        )
    );
}

#[tokio::test]
async fn answers_that_are_not_our_dialect_are_protocol_failures() {
    let dir = tempfile::tempdir().unwrap();
    let server = fake(
        dir.path(),
        vec![
            "HTTP/1.1 400 Bad Request\r\n\r\n",
            r#"{"success":false,"err":"unknown method","result":null}"#,
            r#"{"success":false,"err":"no such process with PID 0","result":null}"#,
        ],
    );
    let sb = open(dir.path()).await;
    let protocol = |e: Error| {
        matches!(
            e,
            Error::Control {
                failure: ControlFailure::Protocol(_),
                ..
            }
        )
    };
    assert!(protocol(sb.processes().await.unwrap_err()));
    assert!(protocol(
        sb.signal(9, SignalTarget::Init).await.unwrap_err()
    ));
    let refused = sb.signal(9, SignalTarget::Init).await.unwrap_err();
    assert!(
        matches!(
            &refused,
            Error::Control {
                failure: ControlFailure::Refused(_),
                ..
            }
        ),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("containerManager.Signal c1: no such process"),
        "{refused}"
    );
    server.join().unwrap();
}

#[tokio::test]
async fn a_state_file_of_the_other_dialect_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let _server = fake(dir.path(), vec![]);
    let e = Sandbox::open(dir.path(), "c1", Dialect::R20221219, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Control {
                failure: ControlFailure::Protocol(_),
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_resume_of_a_running_container_is_refused_before_any_call() {
    // The sentry panics on resuming a kernel that is not paused.
    let dir = tempfile::tempdir().unwrap();
    let server = fake(dir.path(), vec![r#"{"success":true,"result":null}"#]);
    let sb = open(dir.path()).await;
    let e = sb.set_paused(false).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Control {
                failure: ControlFailure::State(_),
                ..
            }
        ),
        "{e}"
    );
    // Pausing it is a call, and records the status.
    sb.set_paused(true).await.unwrap();
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].0.contains("containerManager.Pause"), "{seen:?}");
    let path = state::find(dir.path(), "c1").unwrap();
    assert!(std::fs::read_to_string(path)
        .unwrap()
        .contains("\"paused\""));
}

#[test]
fn wait_statuses_decode_like_runsc_wait() {
    assert_eq!(WaitStatus(7 << 8).code(), 7);
    assert_eq!(WaitStatus(9).code(), 137);
    assert_eq!(WaitStatus(0).code(), 0);
}

#[test]
fn cpu_is_shared_by_what_the_sentry_accounted() {
    let usage: HashMap<String, u64> = [("a".to_string(), 30), ("b".to_string(), 10)].into();
    assert_eq!(cpu_share(&usage, "a", Some(400)), 300);
    assert_eq!(cpu_share(&usage, "a", None), 30);
    let idle: HashMap<String, u64> = [("a".to_string(), 0), ("b".to_string(), 0)].into();
    assert_eq!(cpu_share(&idle, "a", Some(400)), 200);
}

// Seen while writing the control_reply fuzz target: a sandbox's figures
// summed past u64::MAX (an overflow panic in a debug build).
#[test]
fn cpu_share_survives_any_figures_a_sandbox_sends() {
    let huge: HashMap<String, u64> = [("a".to_string(), u64::MAX), ("b".to_string(), 2)].into();
    assert_eq!(cpu_share(&huge, "b", Some(u64::MAX)), 1);
    assert!(cpu_share(&huge, "a", Some(1000)) <= 1000);
    assert_eq!(cpu_share(&HashMap::new(), "a", Some(400)), 0);
}

#[test]
fn only_the_two_known_releases_have_a_dialect() {
    assert_eq!(
        Dialect::for_version("0.0~20221219.0"),
        Some(Dialect::R20221219)
    );
    assert_eq!(
        Dialect::for_version("release-20240729.0"),
        Some(Dialect::R20240729)
    );
    assert_eq!(Dialect::for_version("0.0~20230101.0"), None);
}

/// A runsc whose `--version` is 0.0~20240729 and whose `ps` prints `[1,5]`.
fn fake_cli(dir: &Path) -> crate::Runsc {
    let script = dir.join("fake-runsc");
    test_support::host::write_script(
        &script,
        "#!/bin/sh\ncase \"$*\" in *--version*) echo 'runsc version 0.0~20240729.0';; *ps*) echo '[1,5]';; esac\n",
    );
    crate::GlobalOpts::new().command(&script).root(dir).build()
}

#[tokio::test]
async fn a_socket_that_answers_garbage_sends_calls_through_the_cli_with_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let server = fake(dir.path(), vec!["\u{0}\u{1}garbage{"]);
    let runsc = fake_cli(dir.path());
    assert!(runsc.direct_enabled());
    assert_eq!(runsc.ps("c1").await.unwrap(), vec![1, 5]);
    assert!(
        !runsc.direct_enabled(),
        "the mismatch turns the direct path off"
    );
    // Later calls go straight to the CLI: the server is not asked again.
    assert_eq!(runsc.ps("c1").await.unwrap(), vec![1, 5]);
    let seen = server.join().unwrap();
    assert!(seen[0].0.contains("ContainerRuntimeState"), "{seen:?}");
}

#[tokio::test]
async fn the_same_calls_go_over_the_socket_when_it_speaks_the_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let server = fake(
        dir.path(),
        vec![
            r#"{"success":true,"err":"","result":2}"#,
            r#"{"success":true,"err":"","result":[{"pid":1,"ppid":0,"cmd":"sleep"},{"pid":5,"ppid":0,"cmd":"sh"}]}"#,
        ],
    );
    let runsc = fake_cli(dir.path());
    assert_eq!(runsc.ps("c1").await.unwrap(), vec![1, 5]);
    assert!(runsc.direct_enabled());
    let seen = server.join().unwrap();
    assert_eq!(
        seen[1].0,
        r#"{"method":"containerManager.Processes","arg":"c1"}"#
    );
}

#[test]
fn a_reply_is_read_whole_and_never_past_its_bound() {
    use super::urpc::{reply_complete, MAX_REPLY};
    assert!(!reply_complete(br#"{"success":true,"res"#).unwrap());
    assert!(reply_complete(br#"{"success":true,"result":1}"#).unwrap());
    assert!(reply_complete(b"{]").is_err());
    // A sandbox that never closes its JSON cannot make the shim hold more.
    let mut endless = b"[".repeat(64);
    endless.resize(MAX_REPLY + 1, b' ');
    assert!(reply_complete(&endless).is_err());
}
