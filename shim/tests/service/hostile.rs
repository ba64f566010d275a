//! Hostile requests at the task API: each gets a clear error and leaves
//! nothing behind (no runsc call, no file written where it points).

use containerd_shim::protos::{shim_async::Task, ttrpc::Code};

use crate::{code, ctx, exec_req, runtime_options, Harness};

#[tokio::test]
async fn hostile_ids_are_refused_before_anything_is_done() {
    let h = Harness::new("").await;
    let b = h.bundle("ok", &["sh"]);
    let long = "x".repeat(4096);
    for id in ["a/b", "..", ".", "a\0b", "../../etc", long.as_str(), ""] {
        let mut req = h.create_req("ok", &b);
        req.id = id.into();
        let got = h.svc.create(&ctx(), req).await.map_err(code);
        assert_eq!(got.err(), Some(Code::INVALID_ARGUMENT), "{id:?}");
    }
    assert!(!h.calls().contains("create "), "{}", h.calls());
    assert!(!b.join("runsc-shim.json").exists());
}

#[tokio::test]
async fn a_bundle_that_is_not_one_is_refused_and_left_alone() {
    let h = Harness::new("").await;
    // A directory of the host without a spec, and one that does not exist.
    let host_dir = h.path("not-a-bundle");
    std::fs::create_dir_all(&host_dir).unwrap();
    for bundle in [host_dir.clone(), h.path("missing")] {
        let req = h.create_req("nb1", &bundle);
        let got = h.svc.create(&ctx(), req).await.map_err(code);
        assert_eq!(
            got.err(),
            Some(Code::INVALID_ARGUMENT),
            "{}",
            bundle.display()
        );
    }
    assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 0);
    assert!(!h.calls().contains("create "), "{}", h.calls());
}

#[tokio::test]
async fn stdio_that_is_not_a_fifo_is_never_written() {
    let h = Harness::new("").await;
    let host_file = h.path("host-file");
    std::fs::write(&host_file, "precious\n").unwrap();
    let link = h.path("link-to-host-file");
    std::os::unix::fs::symlink(&host_file, &link).unwrap();
    for (n, stdout) in [&host_file, &link].into_iter().enumerate() {
        let id = format!("io{n}");
        let b = h.bundle(&id, &["sh"]);
        let mut req = h.create_req(&id, &b);
        req.stdout = stdout.to_string_lossy().into_owned();
        let got = h.svc.create(&ctx(), req).await;
        assert!(got.is_err(), "{}", stdout.display());
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "precious\n");
    assert!(!h.calls().contains("create "), "{}", h.calls());
}

#[tokio::test]
async fn runtime_options_naming_an_endless_file_are_refused() {
    let h = Harness::new("").await;
    let b = h.bundle("ro1", &["sh"]);
    let mut req = h.create_req("ro1", &b);
    req.options = Some(runtime_options(std::path::Path::new("/dev/zero"))).into();
    let got = h.svc.create(&ctx(), req).await.map_err(code);
    assert_eq!(got.err(), Some(Code::INVALID_ARGUMENT));
}

#[tokio::test]
async fn bad_signals_and_exec_ids_are_refused() {
    let h = Harness::new("").await;
    h.create("bs1").await.unwrap();
    h.start("bs1", "").await.unwrap();
    for signal in [65, 999, 1 << 31, u32::MAX] {
        assert_eq!(
            h.kill("bs1", "", signal).await,
            Err(Code::INVALID_ARGUMENT),
            "{signal}"
        );
    }
    assert!(!h.calls().contains("kill "), "{}", h.calls());
    for exec_id in ["../x", "a/b", ""] {
        let got = h
            .svc
            .exec(&ctx(), exec_req("bs1", exec_id))
            .await
            .map_err(code);
        assert_eq!(got.err(), Some(Code::INVALID_ARGUMENT), "{exec_id:?}");
    }
    h.svc.exec(&ctx(), exec_req("bs1", "e1")).await.unwrap();
    let again = h
        .svc
        .exec(&ctx(), exec_req("bs1", "e1"))
        .await
        .map_err(code);
    assert_eq!(again.err(), Some(Code::ALREADY_EXISTS));
    h.kill("bs1", "", crate::SIGKILL).await.unwrap();
    h.wait("bs1").await;
    h.delete("bs1").await.unwrap();
}
