//! The shim's one runtime thread stays free while a runsc file is slow.

use std::time::Duration;

use containerd_shim::protos::shim_async::Task;

use crate::{ctx, exec_req, Harness, SIGKILL};

/// The shim has one runtime thread: a pid file that is slow to read (here
/// a FIFO runsc writes 2 s late) must not stall every other request.
#[tokio::test]
async fn a_slow_pid_file_does_not_stall_the_runtime() {
    let h = Harness::new("").await;
    h.create("sl1").await.unwrap();
    h.start("sl1", "").await.unwrap();
    let req = exec_req("sl1", "x");
    h.svc.exec(&ctx(), req).await.unwrap();
    h.set("slow-pid-file");
    // The longest the runtime went without running this ticker.
    let ticker = tokio::spawn(async {
        let mut longest = Duration::ZERO;
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            let t = std::time::Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            longest = longest.max(t.elapsed());
        }
        longest
    });
    let exec_pid = h.start("sl1", "x").await.unwrap().pid;
    let longest = ticker.await.unwrap();
    assert!(
        longest < Duration::from_secs(1),
        "the runtime thread stalled for {longest:?}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(exec_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    h.kill("sl1", "", SIGKILL).await.unwrap();
    h.wait("sl1").await;
    h.delete("sl1").await.unwrap();
}
