//! Docker's libcontainerd client sequence through containerd's gRPC API:
//! Create (container record, then a task with the client's own stdio
//! FIFOs), Signal, SignalProcess, AddProcess (exec, with and without a
//! terminal), Resize, Pause, Resume, Restore (the client and containerd
//! restart; the client re-attaches to the running container and its FIFOs),
//! Stats, GetPidsForContainer / Summary (ListPids), UpdateResources, and
//! the task events Docker consumes (start, pause, resume, exit, exec
//! started/exited, oom), checked in order per container.

use containerd_client::types::v1::Status as TaskStatus;
use nix::sys::signal::Signal::{SIGKILL, SIGTERM, SIGUSR1};

use crate::support::{
    create_container, rt, Client, Containerd, EventLog, Fifos, Output, ProcessDetails, Stats,
};

/// An init that reports SIGUSR1 and exits 7 on SIGTERM, as a daemon with
/// signal handlers does; it writes to both streams first.
const TRAPPING_INIT: &str = r#"trap "echo usr1" USR1; trap "echo term; exit 7" TERM; echo ready; echo to-stderr >&2; while true; do sleep 0.1; done"#;

/// An init that writes a numbered line every 0.1 s (and handles USR1 and
/// TERM like [`TRAPPING_INIT`]): progress is visible on stdout.
const TICKING_INIT: &str = r#"trap "echo usr1" USR1; trap "echo term; exit 7" TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"#;

/// The numbers of the `tick N` lines in `text`, in order.
fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
        .collect()
}

fn topics(events: &[crate::support::Event]) -> Vec<&str> {
    events.iter().map(|e| e.topic.as_str()).collect()
}

#[test]
fn create_signal_and_exit_through_the_clients_fifos() {
    let c = Containerd::start();
    let id = "dk-life";
    create_container(
        &c,
        id,
        &["--label", "com.docker.test=life"],
        &["sh", "-c", TRAPPING_INIT],
    );
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let events = EventLog::subscribe(&client).await;
        // Docker opens its readers before the task exists.
        let io = Fifos::new();
        let (out, err) = (io.stdout(), io.stderr());
        let pid = client.create_task(id, &io).await;
        assert!(pid > 0);
        assert_eq!(client.status(id, "").await, (TaskStatus::Created, pid));
        assert_eq!(client.start(id, "").await, pid);
        out.wait_for("ready\n").await;
        assert_eq!(err.wait_for("to-stderr\n").await, "to-stderr\n");
        assert!(!out.text().contains("to-stderr"), "{:?}", out.text());
        assert_eq!(client.status(id, "").await, (TaskStatus::Running, pid));

        // Signal: the init's handler runs and the task goes on.
        client.kill(id, "", SIGUSR1).await;
        out.wait_for("usr1\n").await;
        assert_eq!(client.status(id, "").await.0, TaskStatus::Running);

        // GetPidsForContainer: the init, with the pid Create reported.
        let pids = client.pids(id).await;
        assert!(
            pids.iter()
                .any(|p| p.pid == pid && ProcessDetails::of(p).is_none()),
            "init pid {pid} not in {pids:?}"
        );

        // Signal TERM: the handler exits 7, which Wait, Delete and the exit
        // event all report; stdout ends after the last line.
        let waiter = tokio::spawn({
            let client = client.clone();
            async move { client.wait(id, "").await }
        });
        client.kill(id, "", SIGTERM).await;
        assert_eq!(waiter.await.unwrap(), 7);
        let text = out.wait_eof().await;
        assert!(text.ends_with("term\n"), "{text:?}");
        assert_eq!(err.wait_eof().await, "to-stderr\n");
        assert_eq!(client.status(id, "").await.0, TaskStatus::Stopped);
        assert_eq!(client.delete_task(id).await, 7);

        let ev = events.wait_for(id, "/tasks/delete", 1).await;
        assert_eq!(
            topics(&ev),
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exit",
                "/tasks/delete"
            ],
            "{ev:#?}"
        );
        assert_eq!((ev[0].pid, ev[1].pid), (pid, pid), "{ev:#?}");
        assert_eq!(
            (ev[2].id.as_str(), ev[2].pid, ev[2].exit_status),
            (id, pid, 7),
            "{ev:#?}"
        );
        assert_eq!(ev[3].exit_status, 7, "{ev:#?}");
    });
    c.stop_and_check();
}

#[test]
fn exec_with_a_terminal_resize_and_separate_streams() {
    let c = Containerd::start();
    let id = "dk-exec";
    create_container(&c, id, &[], &["sleep", "1000"]);
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let events = EventLog::subscribe(&client).await;
        let init_io = Fifos::new();
        client.create_task(id, &init_io).await;
        client.start(id, "").await;

        // `docker exec -it`: a pty, resized before the process reads its
        // size (it waits for a line on stdin first).
        let tty = Fifos::tty();
        let tty_out = tty.stdout();
        client
            .exec(
                id,
                "tty1",
                &["sh", "-c", "read x; test -t 0 && echo is-a-tty; stty size"],
                &tty,
            )
            .await;
        let tty_pid = client.start(id, "tty1").await;
        assert!(tty_pid > 0);
        client.resize(id, "tty1", 123, 45).await;
        let stdin = tty.stdin();
        stdin.writable().await.unwrap();
        stdin.try_write(b"go\n").unwrap();
        assert_eq!(client.wait(id, "tty1").await, 0);
        let text = tty_out.wait_eof().await;
        assert!(text.contains("is-a-tty\r\n"), "no terminal: {text:?}");
        assert!(text.contains("45 123\r\n"), "size not applied: {text:?}");
        drop(stdin);
        assert_eq!(client.delete_process(id, "tty1").await, 0);

        // `docker exec` without a terminal: stdout and stderr apart, and
        // the exit code.
        let plain = Fifos::new();
        let (out, err) = (plain.stdout(), plain.stderr());
        client
            .exec(
                id,
                "plain1",
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                &plain,
            )
            .await;
        client.start(id, "plain1").await;
        assert_eq!(client.wait(id, "plain1").await, 3);
        assert_eq!(out.wait_eof().await, "out\n");
        assert_eq!(err.wait_eof().await, "err\n");
        assert_eq!(client.delete_process(id, "plain1").await, 3);

        // `docker exec -i`: stdin reaches the process, and CloseIO ends it.
        let input = Fifos::with_stdin();
        let in_out = input.stdout();
        client
            .exec(id, "stdin1", &["sh", "-c", "cat; echo done"], &input)
            .await;
        client.start(id, "stdin1").await;
        let stdin = input.stdin();
        stdin.writable().await.unwrap();
        stdin.try_write(b"hello\n").unwrap();
        in_out.wait_for("hello\n").await;
        drop(stdin);
        client.close_stdin(id, "stdin1").await;
        assert_eq!(client.wait(id, "stdin1").await, 0);
        assert_eq!(in_out.wait_eof().await, "hello\ndone\n");
        assert_eq!(client.delete_process(id, "stdin1").await, 0);

        client.kill(id, "", SIGKILL).await;
        assert_eq!(client.wait(id, "").await, 137);
        assert_eq!(client.delete_task(id).await, 137);

        let ev = events.wait_for(id, "/tasks/delete", 1).await;
        let mut want = vec!["/tasks/create", "/tasks/start"];
        for _ in 0..3 {
            want.extend(["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"]);
        }
        want.extend(["/tasks/exit", "/tasks/delete"]);
        assert_eq!(topics(&ev), want, "{ev:#?}");
        let execs: Vec<(&str, &str, u32)> = ev[2..11]
            .iter()
            .map(|e| (e.topic.as_str(), e.id.as_str(), e.exit_status))
            .collect();
        assert_eq!(
            execs,
            [
                ("/tasks/exec-added", "tty1", 0),
                ("/tasks/exec-started", "tty1", 0),
                ("/tasks/exit", "tty1", 0),
                ("/tasks/exec-added", "plain1", 0),
                ("/tasks/exec-started", "plain1", 0),
                ("/tasks/exit", "plain1", 3),
                ("/tasks/exec-added", "stdin1", 0),
                ("/tasks/exec-started", "stdin1", 0),
                ("/tasks/exit", "stdin1", 0),
            ]
        );
        assert_eq!(ev[3].pid, tty_pid, "{ev:#?}");
        assert_eq!((ev[11].id.as_str(), ev[11].exit_status), (id, 137));
    });
    c.stop_and_check();
}

#[test]
fn signal_process_and_pids_naming_the_execs() {
    let c = Containerd::start();
    let id = "dk-pids";
    create_container(&c, id, &[], &["sleep", "1000"]);
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let init_io = Fifos::new();
        let init_pid = client.create_task(id, &init_io).await;
        client.start(id, "").await;
        let (a, b) = (Fifos::new(), Fifos::new());
        client.exec(id, "sleeper", &["sleep", "1000"], &a).await;
        let sleeper_pid = client.start(id, "sleeper").await;
        client.exec(id, "termed", &["sleep", "1000"], &b).await;
        let termed_pid = client.start(id, "termed").await;
        assert_eq!(
            client.status(id, "sleeper").await,
            (TaskStatus::Running, sleeper_pid)
        );

        // GetPidsForContainer / Summary: the init and each exec with the
        // pid Create or Start reported, the execs named by ProcessDetails.
        let pids = client.pids(id).await;
        let mut named: Vec<(Option<String>, u32)> = pids
            .iter()
            .map(|p| (ProcessDetails::of(p), p.pid))
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                (None, init_pid),
                (Some("sleeper".into()), sleeper_pid),
                (Some("termed".into()), termed_pid)
            ],
            "{pids:?}"
        );

        // SignalProcess: only the exec dies, with 128 + the signal.
        client.kill(id, "termed", SIGTERM).await;
        assert_eq!(client.wait(id, "termed").await, 128 + SIGTERM as u32);
        client.kill(id, "sleeper", SIGKILL).await;
        assert_eq!(client.wait(id, "sleeper").await, 128 + SIGKILL as u32);
        assert_eq!(client.status(id, "").await.0, TaskStatus::Running);
        // A signal to a finished process: NotFound, which Docker treats as
        // "already stopped".
        let e = client.try_kill(id, "sleeper", SIGKILL).await.unwrap_err();
        assert_eq!(e.code(), containerd_client::tonic::Code::NotFound, "{e:?}");
        let pids = client.pids(id).await;
        assert_eq!(
            pids.iter().map(ProcessDetails::of).collect::<Vec<_>>(),
            [None],
            "{pids:?}"
        );
        client.delete_process(id, "sleeper").await;
        client.delete_process(id, "termed").await;

        client.kill(id, "", SIGKILL).await;
        assert_eq!(client.wait(id, "").await, 137);
        client.delete_task(id).await;
    });
    c.stop_and_check();
}

#[test]
fn pause_and_resume_in_the_event_sequence() {
    let c = Containerd::start();
    let id = "dk-pause";
    create_container(&c, id, &[], &["sh", "-c", TICKING_INIT]);
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let events = EventLog::subscribe(&client).await;
        let io = Fifos::new();
        let out = io.stdout();
        client.create_task(id, &io).await;
        client.start(id, "").await;
        out.wait_for("tick 3\n").await;

        let probe = Fifos::new();
        client.exec(id, "probe", &["true"], &probe).await;
        client.start(id, "probe").await;
        assert_eq!(client.wait(id, "probe").await, 0);
        client.delete_process(id, "probe").await;

        client.pause(id).await;
        assert_eq!(client.status(id, "").await.0, TaskStatus::Paused);
        // Nothing runs while paused: what was written before the pause is
        // read, then no new line comes.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let paused_at = out.text();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(out.text(), paused_at, "output while paused");

        client.resume(id).await;
        assert_eq!(client.status(id, "").await.0, TaskStatus::Running);
        let last = *ticks(&paused_at).last().unwrap();
        out.wait_for(&format!("tick {}\n", last + 3)).await;

        client.kill(id, "", SIGKILL).await;
        assert_eq!(client.wait(id, "").await, 137);
        client.delete_task(id).await;
        let text = out.wait_eof().await;
        let seen = ticks(&text);
        assert_eq!(
            seen,
            (1..=seen.len() as u64).collect::<Vec<_>>(),
            "lines lost or repeated: {text:?}"
        );

        let ev = events.wait_for(id, "/tasks/delete", 1).await;
        assert_eq!(
            topics(&ev),
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exec-added",
                "/tasks/exec-started",
                "/tasks/exit",
                "/tasks/paused",
                "/tasks/resumed",
                "/tasks/exit",
                "/tasks/delete",
            ],
            "{ev:#?}"
        );
        assert_eq!(ev[4].id, "probe", "{ev:#?}");
        assert_eq!((ev[7].id.as_str(), ev[7].exit_status), (id, 137));
    });
    c.stop_and_check();
}

#[test]
fn stats_and_update_resources() {
    let c = Containerd::start();
    let id = "dk-stats";
    // Some CPU and memory of its own before it idles.
    create_container(
        &c,
        id,
        &[],
        &[
            "sh",
            "-c",
            "x=$(head -c 8000000 /dev/zero | tr '\\0' a); echo ${#x}; sleep 1000",
        ],
    );
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let io = Fifos::new();
        let out = io.stdout();
        client.create_task(id, &io).await;
        // Docker asks for stats of a created container too.
        let created = Stats::decode(&client.metrics(id).await);
        assert!(
            created.type_url.starts_with("io.containerd.cgroups.v"),
            "{created:?}"
        );
        client.start(id, "").await;
        out.wait_for("8000000\n").await;

        let s = Stats::decode(&client.metrics(id).await);
        assert!(s.cpu_ns > 0, "{s:?}");
        assert!(s.memory_usage > 0, "{s:?}");
        let limit: u64 = 256 << 20;
        assert_ne!(s.memory_limit, limit, "{s:?}");

        // UpdateResources: the new memory limit is what Stats reports.
        client
            .update(id, serde_json::json!({"memory": {"limit": limit}}))
            .await
            .unwrap_or_else(|e| panic!("update {id}: {e:?}"));
        let s = Stats::decode(&client.metrics(id).await);
        assert_eq!(s.memory_limit, limit, "{s:?}");
        assert!(s.memory_usage > 0 && s.memory_usage < limit, "{s:?}");

        client.kill(id, "", SIGKILL).await;
        assert_eq!(client.wait(id, "").await, 137);
        client.delete_task(id).await;
    });
    c.stop_and_check();
}

#[test]
fn live_restore_reattaches_to_the_running_container_and_its_output() {
    let mut c = Containerd::start();
    let id = "dk-restore";
    create_container(&c, id, &[], &["sh", "-c", TICKING_INIT]);
    // The FIFOs outlive the client, as Docker's do under its state dir.
    let io = Fifos::new();
    let (pid, before) = rt().block_on(async {
        let client = Client::connect(&c).await;
        let (out, err) = (io.stdout(), io.stderr());
        let pid = client.create_task(id, &io).await;
        client.start(id, "").await;
        out.wait_for("tick 3\n").await;
        err.close().await;
        (pid, out.close().await)
    });
    // The runtime is gone: the gRPC channel and the readers are closed.
    // containerd restarts under the running container; ticks go on.
    c.restart();
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let events = EventLog::subscribe(&client).await;
        assert_eq!(client.status(id, "").await, (TaskStatus::Running, pid));
        let (out, err) = (io.stdout(), io.stderr());
        let last = *ticks(&before).last().unwrap();
        out.wait_for(&format!("tick {}\n", last + 5)).await;

        client.kill(id, "", SIGUSR1).await;
        out.wait_for("usr1\n").await;
        let waiter = tokio::spawn({
            let client = client.clone();
            async move { client.wait(id, "").await }
        });
        client.kill(id, "", SIGTERM).await;
        assert_eq!(waiter.await.unwrap(), 7);
        let after = out.wait_eof().await;
        assert!(after.ends_with("term\n"), "{after:?}");
        assert_eq!(err.wait_eof().await, "");
        // Nothing written while no client read was lost or repeated.
        let all = format!("{before}{after}");
        let seen = ticks(&all);
        assert_eq!(
            seen,
            (1..=seen.len() as u64).collect::<Vec<_>>(),
            "before: {before:?}\nafter: {after:?}"
        );
        assert_eq!(client.delete_task(id).await, 7);
        let ev = events.wait_for(id, "/tasks/delete", 1).await;
        assert_eq!(topics(&ev), ["/tasks/exit", "/tasks/delete"], "{ev:#?}");
        assert_eq!(
            (ev[0].id.as_str(), ev[0].pid, ev[0].exit_status),
            (id, pid, 7)
        );
    });
    c.stop_and_check();
}

#[test]
fn oom_event_comes_before_the_exit() {
    let c = Containerd::start();
    let id = "dk-oom";
    // 64 MiB for the whole sandbox; tail buffers /dev/zero (no newline)
    // until the host kills it.
    create_container(
        &c,
        id,
        &["--memory-limit", "67108864"],
        &["sh", "-c", "tail /dev/zero"],
    );
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let events = EventLog::subscribe(&client).await;
        let io = Fifos::new();
        let _out: Output = io.stdout();
        client.create_task(id, &io).await;
        client.start(id, "").await;
        assert_eq!(client.wait(id, "").await, 137);
        client.delete_task(id).await;
        let ev = events.wait_for(id, "/tasks/delete", 1).await;
        assert_eq!(
            topics(&ev),
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/oom",
                "/tasks/exit",
                "/tasks/delete"
            ],
            "{ev:#?}"
        );
        assert_eq!(ev[3].exit_status, 137, "{ev:#?}");
    });
    c.stop_and_check();
}
