//! One test per lifecycle rule the service keeps.

use std::{sync::Arc, time::Duration};

use containerd_shim::{
    api,
    protos::{shim_async::Task, ttrpc::Code},
};

use crate::{code, ctx, exec_req, message, Harness, SIGKILL};

#[tokio::test]
async fn an_exit_during_start_is_published_after_task_start() {
    let mut h = Harness::new("").await;
    h.set("exit-at-start");
    h.create("c1").await.unwrap();
    h.start("c1", "").await.unwrap();
    assert_eq!(h.wait("c1").await, 137);
    h.delete("c1").await.unwrap();
    let topics = h.topics_until("c1", "/tasks/delete").await;
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
}

#[tokio::test]
async fn events_keep_their_order_under_load() {
    let mut h = Harness::new("").await;
    h.set("exit-at-start");
    let ids: Vec<String> = (0..8).map(|i| format!("load{i}")).collect();
    let runs = ids.iter().map(|id| async {
        h.create(id).await.unwrap();
        h.start(id, "").await.unwrap();
        h.wait(id).await;
        h.delete(id).await.unwrap();
    });
    futures::future::join_all(runs).await;
    for id in &ids {
        let topics = h.topics_until(id, "/tasks/delete").await;
        assert_eq!(
            topics,
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exit",
                "/tasks/delete"
            ],
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_second_kill_of_an_exited_process_is_not_found() {
    let h = Harness::new("").await;
    h.run_and_kill("k1").await;
    for sig in [SIGKILL, 15] {
        assert_eq!(h.kill("k1", "", sig).await, Err(Code::NOT_FOUND));
    }
    h.delete("k1").await.unwrap();
}

#[tokio::test]
async fn a_create_without_a_sandbox_pid_fails_and_leaves_nothing() {
    let h = Harness::new("").await;
    h.set("no-pid-file");
    let e = h.create("np1").await.unwrap_err();
    assert_ne!(e, Code::OK);
    assert!(h.calls().contains("delete --force np1"), "{}", h.calls());
    let req = api::StateRequest {
        id: "np1".into(),
        ..Default::default()
    };
    assert_eq!(
        h.svc.state(&ctx(), req).await.map_err(code).unwrap_err(),
        Code::NOT_FOUND
    );
}

#[tokio::test]
async fn stats_are_served_for_a_created_task() {
    let h = Harness::new("").await;
    h.create("s1").await.unwrap();
    let req = api::StatsRequest {
        id: "s1".into(),
        ..Default::default()
    };
    let stats = h.svc.stats(&ctx(), req).await.unwrap();
    assert!(stats.stats.is_some());
    // runsc 0.0~20221219 panics on `events --stats` before start: not asked.
    assert!(!h.calls().contains("events"), "{}", h.calls());
    h.delete("s1").await.unwrap();
}

#[tokio::test]
async fn pids_give_the_init_the_pid_create_reported() {
    let h = Harness::new("").await;
    let pid = h.create("p1").await.unwrap().pid;
    h.start("p1", "").await.unwrap();
    let req = api::PidsRequest {
        id: "p1".into(),
        ..Default::default()
    };
    let pids: Vec<u32> = h
        .svc
        .pids(&ctx(), req)
        .await
        .unwrap()
        .processes
        .iter()
        .map(|p| p.pid)
        .collect();
    // In-sandbox pids stay, but never one a host process has (pid 5 on
    // most hosts: `docker top` would show that process as the container's).
    let host_has_5 = std::path::Path::new("/proc/5").exists();
    let want: Vec<u32> = [pid, 5, 4194301]
        .into_iter()
        .filter(|p| *p != 5 || !host_has_5)
        .collect();
    assert_eq!(pids, want);
    h.kill("p1", "", SIGKILL).await.unwrap();
    h.wait("p1").await;
    h.delete("p1").await.unwrap();
}

#[tokio::test]
async fn pids_give_an_exec_the_pid_start_reported_and_its_id() {
    use containerd_shim::protos::{protobuf::Message, shim::oci::ProcessDetails};
    let h = Harness::new("").await;
    let pid = h.create("p2").await.unwrap().pid;
    h.start("p2", "").await.unwrap();
    let req = exec_req("p2", "x");
    h.svc.exec(&ctx(), req).await.unwrap();
    let exec_pid = h.start("p2", "x").await.unwrap().pid;
    let req = api::PidsRequest {
        id: "p2".into(),
        ..Default::default()
    };
    let pids: Vec<(u32, String)> = h
        .svc
        .pids(&ctx(), req)
        .await
        .unwrap()
        .processes
        .iter()
        .map(|p| {
            let exec_id = p.info.as_ref().map_or(String::new(), |a| {
                ProcessDetails::parse_from_bytes(&a.value).unwrap().exec_id
            });
            (p.pid, exec_id)
        })
        .collect();
    // runsc ps: 1 (init), 5 and 4194301 (children: 5 is listed only if
    // no host process has it), 9 (the exec, in the sandbox).
    let mut want = vec![(pid, String::new())];
    if !std::path::Path::new("/proc/5").exists() {
        want.push((5, String::new()));
    }
    want.extend([(4194301, String::new()), (exec_pid, "x".into())]);
    assert_eq!(pids, want);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(exec_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    h.kill("p2", "", SIGKILL).await.unwrap();
    h.wait("p2").await;
    h.delete("p2").await.unwrap();
}

#[tokio::test]
async fn an_exec_whose_pid_is_unknown_is_never_signalled_through_init() {
    let h = Harness::new("").await;
    h.set("no-internal-pid");
    h.create("e1").await.unwrap();
    h.start("e1", "").await.unwrap();
    let req = exec_req("e1", "x");
    h.svc.exec(&ctx(), req).await.unwrap();
    let exec_pid = h.start("e1", "x").await.unwrap().pid;
    assert_eq!(
        h.kill("e1", "x", SIGKILL).await,
        Err(Code::FAILED_PRECONDITION)
    );
    assert!(!h.calls().contains("kill"), "runsc kill ran: {}", h.calls());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(exec_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    h.kill("e1", "", SIGKILL).await.unwrap();
    h.wait("e1").await;
    h.delete("e1").await.unwrap();
}

#[tokio::test]
async fn a_hung_runsc_create_answers_deadline_exceeded_and_leaves_nothing() {
    let h = Harness::new("[runsc_timeouts]\ncreate = 0.5").await;
    h.set("hang-create");
    let b = h.bundle("h1", &["sh"]);
    let err = h
        .svc
        .create(&ctx(), h.create_req("h1", &b))
        .await
        .unwrap_err();
    let (c, msg) = (code(err.clone()), message(err));
    assert_eq!(c, Code::DEADLINE_EXCEEDED, "{msg}");
    assert!(msg.contains("did not finish within 500ms"), "{msg}");
    // Nothing of it is left in the shim: the same id can be created again.
    std::fs::remove_file(h.path("hang-create")).unwrap();
    h.create("h1").await.unwrap();
    h.delete("h1").await.unwrap();
}

#[tokio::test]
async fn a_create_whose_client_gave_up_is_undone() {
    let h = Harness::new("").await;
    h.set("slow-create");
    let b = h.bundle("g1", &["sh"]);
    let req = h.create_req("g1", &b);
    let gave_up = tokio::time::timeout(Duration::from_millis(200), h.svc.create(&ctx(), req)).await;
    assert!(gave_up.is_err());
    // The create finishes on its own, sees nobody waiting, and is undone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !h.calls().contains("delete") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.calls().contains("delete"), "{}", h.calls());
    let state = api::StateRequest {
        id: "g1".into(),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = h.svc.state(&ctx(), state.clone()).await;
        if r.is_err() || tokio::time::Instant::now() > deadline {
            assert_eq!(r.map(drop).map_err(code), Err(Code::NOT_FOUND));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn runsc_config_keys_are_checked_against_this_runsc() {
    let h = Harness::new("[runsc_config]\nnetwork = \"none\"\nnetwrok = \"host\"").await;
    let b = h.bundle("r1", &["sh"]);
    let err = h
        .svc
        .create(&ctx(), h.create_req("r1", &b))
        .await
        .unwrap_err();
    let (c, msg) = (code(err.clone()), message(err));
    assert_eq!(c, Code::INVALID_ARGUMENT, "{msg}");
    assert!(
        msg.contains("\"netwrok\"") && !msg.contains("\"network\""),
        "{msg}"
    );
    assert!(
        !h.calls().contains("create"),
        "runsc create ran: {}",
        h.calls()
    );

    let h = Harness::new("[runsc_config]\nroot = \"/elsewhere\"").await;
    let b = h.bundle("r2", &["sh"]);
    let err = h
        .svc
        .create(&ctx(), h.create_req("r2", &b))
        .await
        .unwrap_err();
    assert!(message(err).contains("\"root\""));
}

#[tokio::test]
async fn a_missing_executable_fails_at_create_like_runc() {
    let h = Harness::new("").await;
    let b = h.bundle("x1", &["no-such-binary"]);
    let err = h
        .svc
        .create(&ctx(), h.create_req("x1", &b))
        .await
        .unwrap_err();
    assert_eq!(
        message(err),
        "exec: \"no-such-binary\": executable file not found in $PATH"
    );
    assert!(!h.calls().contains("create"), "{}", h.calls());
}

#[tokio::test]
async fn after_shutdown_no_new_work_is_taken() {
    let h = Harness::new("").await;
    h.svc
        .shutdown(&ctx(), api::ShutdownRequest::default())
        .await
        .unwrap();
    assert_eq!(
        h.create("late").await.map(drop),
        Err(Code::FAILED_PRECONDITION)
    );
    tokio::time::timeout(Duration::from_secs(1), h.exit.wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_start_whose_client_gave_up_still_completes() {
    let mut h = Harness::new("").await;
    h.set("slow-start");
    h.create("st1").await.unwrap();
    let req = api::StartRequest {
        id: "st1".into(),
        ..Default::default()
    };
    let c = ctx();
    let gave_up = tokio::time::timeout(Duration::from_millis(200), h.svc.start(&c, req)).await;
    assert!(gave_up.is_err());
    // The start went on: TaskStart is published and the exit is watched.
    let topics = h.topics_until("st1", "/tasks/start").await;
    assert_eq!(topics, ["/tasks/create", "/tasks/start"]);
    h.kill("st1", "", SIGKILL).await.unwrap();
    assert_eq!(h.wait("st1").await, 137);
    h.delete("st1").await.unwrap();
    let topics = h.topics_until("st1", "/tasks/delete").await;
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
}

#[tokio::test]
async fn a_runsc_that_dies_mid_create_leaves_nothing() {
    let h = Harness::new("").await;
    h.set("die-create");
    let b = h.bundle("d1", &["sh"]);
    let err = h
        .svc
        .create(&ctx(), h.create_req("d1", &b))
        .await
        .unwrap_err();
    let (c, msg) = (code(err.clone()), message(err));
    assert_eq!(c, Code::UNKNOWN, "{msg}");
    assert!(msg.contains("exit status 137"), "{msg}");
    // No entry in the shim, no runsc root for the sandbox.
    assert!(!h.path("root/test/d1").exists());
    std::fs::remove_file(h.path("die-create")).unwrap();
    h.create("d1").await.unwrap();
    h.delete("d1").await.unwrap();
}

#[tokio::test]
async fn a_reused_id_waits_until_the_previous_container_is_removed() {
    let h = Harness::new("").await;
    h.run_and_kill("r1").await;
    // The old container's runsc delete and root removal run after Delete's
    // answer; a slow one must not reach the new container's root.
    h.set("slow-delete");
    h.delete_answered("r1").await.unwrap();
    let root = h.path("root/test/r1");
    assert!(root.join(".shim-cleanup").is_file());
    let since = std::time::Instant::now();
    h.create("r1").await.unwrap();
    assert!(
        since.elapsed() >= Duration::from_millis(900),
        "{:?}",
        since.elapsed()
    );
    h.svc.finish_cleanups().await;
    assert!(root.is_dir(), "the new container's runsc root was removed");
    assert!(!root.join(".shim-cleanup").exists());
    std::fs::remove_file(h.path("slow-delete")).unwrap();
    h.delete("r1").await.unwrap();
}

#[tokio::test]
async fn a_second_delete_waits_for_the_first_then_finds_nothing() {
    let h = Harness::new("").await;
    h.create("w1").await.unwrap();
    // A created container's runsc delete runs before Delete answers.
    h.set("slow-delete");
    let first = {
        let svc = h.svc.clone();
        tokio::spawn(async move {
            let req = api::DeleteRequest {
                id: "w1".into(),
                ..Default::default()
            };
            svc.delete(&ctx(), req).await.map_err(code)
        })
    };
    // Let the first Delete reach its runsc delete.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = h.delete_answered("w1").await;
    assert!(
        first.is_finished(),
        "the second Delete answered while the first was still under way"
    );
    assert_eq!(second.unwrap_err(), Code::NOT_FOUND);
    first.await.unwrap().unwrap();
    std::fs::remove_file(h.path("slow-delete")).unwrap();
    h.svc.finish_cleanups().await;
}

#[tokio::test]
async fn a_shutdown_with_containers_left_ends_the_shim_at_the_last_delete() {
    // Task API v3: containerd shuts the shim down after the pod's sandbox
    // container only, and sends nothing after its members.
    let h = Harness::new("").await;
    h.create("m1").await.unwrap();
    h.create("m2").await.unwrap();
    h.svc
        .shutdown(&ctx(), api::ShutdownRequest::default())
        .await
        .unwrap();
    h.delete("m1").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), h.exit.wait())
            .await
            .is_err(),
        "the shim ended with a container left"
    );
    h.delete("m2").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), h.exit.wait())
        .await
        .expect("the last Delete did not end the shim");
}

#[tokio::test]
async fn a_shutdown_during_a_create_undoes_it_and_ends_the_shim() {
    // containerd restarted in the middle of a Create: it finds a shim whose
    // task it does not know, sends Delete and Shutdown, and forgets it.
    let h = Arc::new(Harness::new("").await);
    h.set("slow-create");
    let creating = {
        let h = h.clone();
        tokio::spawn(async move { h.create("gone1").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.delete("gone1").await.map(drop), Err(Code::NOT_FOUND));
    h.svc
        .shutdown(&ctx(), api::ShutdownRequest::default())
        .await
        .unwrap();
    assert_eq!(
        creating.await.unwrap().map(drop),
        Err(Code::FAILED_PRECONDITION)
    );
    tokio::time::timeout(Duration::from_secs(5), h.exit.wait())
        .await
        .expect("the shim did not end after the abandoned Create");
    let calls = h.calls();
    assert!(calls.contains("\ndelete "), "not undone: {calls}");
    h.svc.finish_cleanups().await;
}
