//! Requests that race a container's exit, made in the order that loses
//! the race every time: what `ctr tasks exec` or Docker's exec meets when
//! the container stops between adding a process and starting it, and
//! Docker's restart policy creating the next task while the last one's
//! runsc state is still being removed.

use containerd_client::tonic::Code;
use containerd_client::types::v1::Status as TaskStatus;
use nix::sys::signal::Signal::SIGKILL;

use crate::support::{create_container, rt, Client, Containerd, Fifos};

#[test]
fn an_exec_started_after_its_container_stopped_fails_and_releases_its_client() {
    let c = Containerd::start();
    let id = "race-late";
    create_container(&c, id, &[], &["sleep", "1000"]);
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let io = Fifos::new();
        client.create_task(id, &io).await;
        client.start(id, "").await;
        // Added while the container runs...
        let exec = Fifos::new();
        let (out, err) = (exec.stdout(), exec.stderr());
        client.exec(id, "late", &["echo", "never"], &exec).await;
        // ...started once it has stopped.
        client.kill(id, "", SIGKILL).await;
        assert_eq!(client.wait(id, "").await, 137);
        let e = client.try_start(id, "late").await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        // containerd's client reads the FIFOs until EOF before it returns
        // Start's error (ctr hung here forever), then waits for the exit.
        assert_eq!(out.wait_eof().await, "");
        assert_eq!(err.wait_eof().await, "");
        assert_eq!(client.status(id, "late").await.0, TaskStatus::Stopped);
        assert_eq!(client.wait(id, "late").await, 128);
        client.delete_process(id, "late").await;
        assert_eq!(client.delete_task(id).await, 137);
    });
    c.stop_and_check();
}

#[test]
fn a_task_created_again_at_once_for_the_same_container_runs_clean() {
    // Docker's restart policy: once the task exits, delete it and create
    // the next for the same container at once. The previous shim removes
    // runsc's state, root and cgroup after its Delete answered; none of
    // that may reach the new task.
    let c = Containerd::start();
    let id = "race-again";
    create_container(&c, id, &[], &["sh", "-c", "echo up; sleep 0.2; exit 3"]);
    rt().block_on(async {
        let client = Client::connect(&c).await;
        for n in 0..4 {
            let io = Fifos::new();
            let out = io.stdout();
            client.create_task(id, &io).await;
            client.start(id, "").await;
            assert_eq!(client.wait(id, "").await, 3, "run {n}");
            assert_eq!(out.wait_eof().await, "up\n", "run {n}");
            assert_eq!(client.delete_task(id).await, 3, "run {n}");
        }
    });
    c.stop_and_check();
}
