//! Networking like a pod's: runsc's own stack in a network namespace made
//! for the test (a veth pair on a private /30), and the host's network.
//! Traffic goes only to that namespace and to loopback.

use integration::cri::{http_get, serve_http_script};
use test_support::netns::TestNetns;

use crate::Containerd;

#[test]
fn a_pod_namespace_gets_gvisors_stack_and_serves_http() {
    let ns = TestNetns::new("rsn", "10.213", ["vh", "vn"], 1);
    let c = Containerd::start();
    let with_ns = format!("network:{}", ns.path());
    c.run_detached(
        "web",
        &["--with-ns", &with_ns],
        &["sh", "-c", &serve_http_script("8080")],
    );
    let body = http_get(&format!("{}:8080", ns.inner));
    assert!(body.contains("hello-from-gvisor"), "{body}");
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "web"]);
    c.wait_status("web", "STOPPED");
    c.stop_and_check();
}

#[test]
fn a_spec_without_a_network_namespace_uses_the_hosts() {
    let c = Containerd::start();
    let port = 20_000 + std::process::id() % 20_000;
    c.run_detached(
        "hostnet",
        &["--net-host"],
        &["sh", "-c", &serve_http_script(&format!("127.0.0.1:{port}"))],
    );
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(body.contains("hello-from-gvisor"), "{body}");
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "hostnet"]);
    c.wait_status("hostnet", "STOPPED");
    c.stop_and_check();
}
