//! `ctr run` without and with a terminal: output, exit codes, stdin, env.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use crate::{Containerd, OutputExt};

#[test]
fn echo_without_tty() {
    let c = Containerd::start();
    let out = c.run("echo1", &[], &["echo", "hello from gvisor"]);
    assert_eq!(out.code(), 0, "{}\n{}", out.err(), c.log_tail(30));
    assert_eq!(out.out(), "hello from gvisor\n");
    c.stop_and_check();
}

#[test]
fn exit_codes_and_signals() {
    let c = Containerd::start();
    let out = c.run("exit7", &[], &["sh", "-c", "exit 7"]);
    assert_eq!(out.code(), 7, "{}", out.err());
    // A process killed by a signal reports 128 + signal.
    let out = c.run("selfkill", &[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(out.code(), 137, "{}", out.err());
    c.stop_and_check();
}

#[test]
fn separate_stderr_env_and_cwd() {
    let c = Containerd::start();
    let out = c.run(
        "envcwd",
        &["--env", "FOO=bar baz", "--cwd", "/tmp"],
        &["sh", "-c", "echo out:$FOO; pwd; echo err-line >&2"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "out:bar baz\n/tmp\n");
    assert_eq!(out.err(), "err-line\n");
    c.stop_and_check();
}

#[test]
fn stdin_is_forwarded_and_closed() {
    let c = Containerd::start();
    let mut child = c
        .ctr_cmd()
        .args([
            "run",
            "--rm",
            "--runtime",
            crate::RUNTIME,
            crate::IMAGE_REF,
            "stdin1",
        ])
        .args(["sh", "-c", "wc -c; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'x'; 10000])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(
        out.out().split_whitespace().collect::<Vec<_>>(),
        ["10000", "done"]
    );
    c.stop_and_check();
}

#[test]
fn sixty_four_mib_of_stdout_byte_exact() {
    let c = Containerd::start();
    // seq output is deterministic: compare with the host's.
    let n = "8800000";
    let out = c.run("big", &[], &["seq", "1", n]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let want = Command::new("seq").args(["1", n]).output().unwrap().stdout;
    assert!(want.len() > 64 << 20);
    assert_eq!(out.stdout.len(), want.len());
    assert!(out.stdout == want, "stdout differs from seq 1 {n}");
    c.stop_and_check();
}

#[test]
fn tty_with_size() {
    let c = Containerd::start();
    // ctr -t needs a terminal: `script` gives it one, sized by stty.
    let out = c.ctr_in_tty(
        123,
        45,
        &format!(
            "run --rm -t --runtime {} {} tty1 sh -c '[ -t 0 ] && echo is-a-tty; sleep 0.5; stty size'",        crate::RUNTIME,
        crate::IMAGE_REF
        ),
    );
    let text = out.out();
    assert_eq!(out.code(), 0, "{text}\n{}", out.err());
    assert!(text.contains("is-a-tty"), "{text}");
    assert!(text.contains("45 123"), "{text}");
    c.stop_and_check();
}

#[test]
fn null_io() {
    let c = Containerd::start();
    let out = c.run(
        "nullio",
        &["--null-io"],
        &["sh", "-c", "echo hidden; exit 3"],
    );
    assert_eq!(out.code(), 3, "{}", out.err());
    assert_eq!(out.out(), "");
    c.stop_and_check();
}

#[test]
fn same_id_reused_at_once() {
    // The previous shim of an id may still be removing runsc's state.
    let c = Containerd::start();
    for n in 0..3 {
        let out = c.run("again", &[], &["echo", &n.to_string()]);
        assert_eq!(out.code(), 0, "{}", out.err());
        assert_eq!(out.out(), format!("{n}\n"));
    }
    c.stop_and_check();
}
