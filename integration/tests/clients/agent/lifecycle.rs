//! Containers found by label; StartContainer with null IO; StopContainer's
//! TERM, then KILL when its timeout passes, and the exit status Wait and the
//! `/tasks/exit` event report.

use std::time::Duration;

use containerd_client::{services::v1::ListTasksRequest, types::v1::Status as TaskStatus};
use nix::sys::signal::Signal;

use super::{init_exits, is_not_found, unique, Agent};
use crate::support::{create_container, rt, Containerd, EventLog};

/// Waits until the init's script has set its trap (it then touches /ready).
async fn trap_set(a: &Agent, id: &str) {
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    while a.exec_task(id, &["test", "-e", "/ready"]).await.exit_code != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never set its trap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn containers_are_found_by_label_and_started_with_null_io() {
    let c = Containerd::start();
    let app = unique("agent-app");
    let (a1, a2, other) = (unique("agent-a"), unique("agent-b"), unique("agent-other"));
    let app_label = format!("app={app}");
    create_container(
        &c,
        &a1,
        &["--label", &app_label, "--label", "role=worker"],
        &["sleep", "1000"],
    );
    create_container(&c, &a2, &["--label", &app_label], &["sleep", "1000"]);
    create_container(&c, &other, &["--label", "app=other"], &["sleep", "1000"]);
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        let mut both = vec![a1.clone(), a2.clone()];
        both.sort();
        // The service filters every record by its labels; containerd's own
        // label filter agrees.
        assert_eq!(a.list_by_label("app", &app).await, both);
        assert_eq!(a.list_by_label("role", "").await, [a1.as_str()]);
        assert_eq!(a.list_by_label("app", "nobody").await, Vec::<String>::new());
        let filter = format!("labels.\"app\"==\"{app}\"");
        assert_eq!(a.list_containers(&[filter]).await, both);
        assert_eq!(
            a.list_containers(&["labels.role".into()]).await,
            [a1.as_str()]
        );

        let mut pids = Vec::new();
        for id in a.list_by_label("app", &app).await {
            let pid = a.start_container(&id).await;
            assert!(pid > 0, "{id}");
            assert_eq!(a.client.status(&id, "").await, (TaskStatus::Running, pid));
            pids.push((id, pid, TaskStatus::Running));
        }
        // ListTasks: those two, running, with the pids Start returned.
        let mut tasks: Vec<_> = a
            .client
            .tasks
            .clone()
            .list(a.client.req(ListTasksRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .tasks
            .into_iter()
            .map(|t| (t.id.clone(), t.pid, t.status()))
            .collect();
        tasks.sort();
        assert_eq!(tasks, pids);
        // Only what the label found has a task.
        let none = a
            .client
            .tasks
            .clone()
            .get(a.client.req(containerd_client::services::v1::GetRequest {
                container_id: other.clone(),
                exec_id: String::new(),
            }))
            .await
            .expect_err("no task for the other label");
        assert!(is_not_found(&none), "{none:?}");

        for id in a.list_by_label("app", &app).await {
            a.stop_and_delete_task(&id, Duration::from_secs(20)).await;
        }
        // The records stay, found by label, with no task.
        assert_eq!(a.list_by_label("app", &app).await, both);
    });
    c.stop_and_check();
}

#[test]
fn stop_container_ends_a_process_that_exits_on_term_within_the_timeout() {
    let c = Containerd::start();
    // No handler: under runc a PID 1 ignores TERM from outside its
    // namespace; gVisor's sentry delivers it and the default action kills.
    let plain = unique("agent-plain");
    create_container(&c, &plain, &[], &["sleep", "1000"]);
    // A handler that exits.
    let trapping = unique("agent-trap");
    let script = "trap 'exit 7' TERM; touch /ready; while true; do sleep 0.1; done";
    create_container(&c, &trapping, &[], &["sh", "-c", script]);
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        let events = EventLog::subscribe(&a.client).await;
        for (id, want) in [(&plain, 143), (&trapping, 7)] {
            a.start_container(id).await;
            if id == &trapping {
                trap_set(&a, id).await;
            }
            let stopped = a
                .stop_container(id, Signal::SIGTERM, Duration::from_secs(20), true)
                .await
                .unwrap();
            assert_eq!(stopped.at_timeout, None, "{id}: TERM alone stops it");
            assert_eq!(stopped.exit_status, want, "{id}");
            let exits = init_exits(&events, id).await;
            assert_eq!(exits.len(), 1, "{exits:?}");
            assert_eq!(
                (exits[0].id.as_str(), exits[0].exit_status),
                (id.as_str(), want)
            );
            assert_eq!(a.client.status(id, "").await.0, TaskStatus::Stopped);
            assert_eq!(a.client.delete_task(id).await, want);
        }
    });
    c.stop_and_check();
}

#[test]
fn stop_container_kills_a_process_that_ignores_term_when_the_timeout_passes() {
    let c = Containerd::start();
    let id = unique("agent-stubborn");
    let script = "trap '' TERM; touch /ready; while true; do sleep 0.1; done";
    create_container(&c, &id, &[], &["sh", "-c", script]);
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        let events = EventLog::subscribe(&a.client).await;
        a.start_container(&id).await;
        trap_set(&a, &id).await;
        // Without force: the timeout passes, the service gives up its Wait
        // and reports ErrTaskStopTimeout; the task runs on.
        let running = a
            .stop_container(&id, Signal::SIGTERM, Duration::from_secs(2), false)
            .await
            .expect_err("TERM is ignored");
        assert_eq!(running, TaskStatus::Running);
        assert_eq!(a.client.status(&id, "").await.0, TaskStatus::Running);
        // With force: KILL once the timeout passed.
        let stopped = a
            .stop_container(&id, Signal::SIGTERM, Duration::from_secs(2), true)
            .await
            .unwrap();
        assert_eq!(stopped.at_timeout, Some(TaskStatus::Running));
        assert_eq!(stopped.exit_status, 137);
        let exits = init_exits(&events, &id).await;
        assert_eq!(exits.len(), 1, "{exits:?}");
        assert_eq!(exits[0].exit_status, 137);
        assert_eq!(a.client.delete_task(&id).await, 137);
    });
    c.stop_and_check();
}
