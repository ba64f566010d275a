//! The events a run and an exec publish, in order.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::{Containerd, OutputExt};

struct EventLog {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl EventLog {
    fn start(c: &Containerd) -> EventLog {
        let mut child = c
            .ctr_cmd()
            .arg("events")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        thread::sleep(Duration::from_millis(300));
        EventLog {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// Task topics seen for `id` until `last` appears.
    fn topics_until(&mut self, id: &str, last: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line);
            }
            let topics = self.topics(id);
            if topics.iter().any(|t| t == last) {
                return topics;
            }
        }
        panic!("{last} never seen; events:\n{}", self.seen.join("\n"));
    }

    fn topics(&self, id: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|l| {
                l.contains(&format!("\"{id}\"")) || l.contains(&format!("container_id:{id}"))
            })
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("/tasks/"))
                    .map(str::to_string)
            })
            .collect()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_and_exec_event_sequences() {
    let c = Containerd::start();
    let mut ev = EventLog::start(&c);
    c.run_detached("ev1", &[], &["sleep", "1000"]);
    let out = c.ctr(&["tasks", "exec", "--exec-id", "x1", "ev1", "true"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    c.ctr_ok(&["tasks", "pause", "ev1"]);
    c.ctr_ok(&["tasks", "resume", "ev1"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "ev1"]);
    c.wait_status("ev1", "STOPPED");
    c.ctr_ok(&["tasks", "delete", "ev1"]);
    let topics = ev.topics_until("ev1", "/tasks/delete");
    let want = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ];
    assert_eq!(topics, want, "events:\n{}", ev.seen.join("\n"));
    c.stop_and_check();
}

#[test]
fn oom_kill_is_published_before_the_exit() {
    let c = Containerd::start();
    let mut ev = EventLog::start(&c);
    // 64 MiB for the whole sandbox; tail buffers /dev/zero (no newline) forever.
    let out = c.run(
        "oom1",
        &["--memory-limit", "67108864"],
        &["sh", "-c", "tail /dev/zero"],
    );
    assert_eq!(out.code(), 137, "{}", out.err());
    let topics = ev.topics_until("oom1", "/tasks/exit");
    let oom = topics.iter().position(|t| t == "/tasks/oom");
    let exit = topics.iter().position(|t| t == "/tasks/exit");
    assert!(oom.is_some() && oom < exit, "events: {topics:?}");
    c.stop_and_check();
}

#[test]
fn events_keep_their_order_for_concurrent_short_lived_tasks() {
    let c = Containerd::start();
    let mut ev = EventLog::start(&c);
    let ids: Vec<String> = (0..6).map(|i| format!("burst{i}")).collect();
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || {
                let out = c.run(id, &[], &["true"]);
                assert_eq!(out.code(), 0, "{id}: {}", out.err());
            });
        }
    });
    for id in &ids {
        let topics = ev.topics_until(id, "/tasks/delete");
        assert_eq!(
            topics,
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exit",
                "/tasks/delete"
            ],
            "{id}; events:\n{}",
            ev.seen.join("\n")
        );
    }
    c.stop_and_check();
}
