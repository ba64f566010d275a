//! ExecTask (stdout and stderr captured, the exit code) and
//! ExecTaskStreaming (stdin written then closed, stdout and stderr read as
//! separate streams while the process runs, Wait, Close).

use std::time::Duration;

use super::{is_not_found, unique, Agent};
use crate::support::{create_container, rt, Containerd, EventLog};

#[test]
fn exec_task_captures_stdout_stderr_and_the_exit_code() {
    let c = Containerd::start();
    let id = unique("agent-exec");
    create_container(&c, &id, &[], &["sleep", "1000"]);
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        let events = EventLog::subscribe(&a.client).await;
        a.start_container(&id).await;

        let out = a
            .exec_task(&id, &["sh", "-c", "echo out; echo err >&2; exit 3"])
            .await;
        assert_eq!(
            (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
            (3, "out\n", "err\n"),
            "{out:?}"
        );
        // The exec's own /tasks/exit carries the same status.
        let exits: Vec<_> = events
            .wait_for(&id, "/tasks/exit", 1)
            .await
            .into_iter()
            .filter(|e| e.topic == "/tasks/exit")
            .collect();
        assert_eq!(exits.len(), 1, "{exits:?}");
        assert_ne!(exits[0].id, id, "the init did not exit: {exits:?}");
        assert_eq!(exits[0].exit_status, 3, "{exits:?}");

        let out = a.exec_task(&id, &["true"]).await;
        assert_eq!(
            (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
            (0, "", ""),
            "{out:?}"
        );

        // Output larger than a pipe's buffer is all there when the exit is.
        let out = a.exec_task(&id, &["seq", "1", "50000"]).await;
        assert_eq!(out.exit_code, 0, "{}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 50000);
        assert_eq!(lines.last(), Some(&"50000"));

        // The init was never touched.
        assert_eq!(
            a.client.status(&id, "").await.0,
            containerd_client::types::v1::Status::Running
        );
        a.stop_and_delete_task(&id, Duration::from_secs(2)).await;
    });
    c.stop_and_check();
}

#[test]
fn exec_task_streaming_writes_stdin_and_reads_separate_streams() {
    let c = Containerd::start();
    let id = unique("agent-stream");
    create_container(&c, &id, &[], &["sleep", "1000"]);
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        a.start_container(&id).await;

        // cat echoes each line while it runs; EOF on stdin ends it.
        let mut s = a.exec_streaming(&id, &["cat"]).await;
        s.write_stdin(b"hello\n").await;
        s.stdout.wait_for("hello\n").await;
        s.write_stdin(b"again\n").await;
        s.stdout.wait_for("again\n").await;
        s.close_stdin();
        assert_eq!(s.wait().await, 0);
        assert_eq!(s.stdout.wait_eof().await, "hello\nagain\n");
        assert_eq!(s.stderr.wait_eof().await, "");
        let exec_id = s.exec_id.clone();
        assert_eq!(s.close().await, 0);
        let gone = a
            .client
            .tasks
            .clone()
            .get(a.client.req(containerd_client::services::v1::GetRequest {
                container_id: id.clone(),
                exec_id: exec_id.clone(),
            }))
            .await
            .expect_err("the exec is deleted after Close");
        assert!(is_not_found(&gone), "{gone:?}");

        // stdout and stderr stay separate; the exit code comes back.
        let mut s = a
            .exec_streaming(&id, &["sh", "-c", "cat; echo e >&2; exit 5"])
            .await;
        s.write_stdin(b"to-stdout").await;
        s.close_stdin();
        assert_eq!(s.wait().await, 5);
        assert_eq!(s.stdout.wait_eof().await, "to-stdout");
        assert_eq!(s.stderr.wait_eof().await, "e\n");
        assert_eq!(s.close().await, 5);

        a.stop_and_delete_task(&id, Duration::from_secs(2)).await;
    });
    c.stop_and_check();
}
