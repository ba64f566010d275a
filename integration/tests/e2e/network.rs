//! Networking like a pod's: runsc's own stack in a network namespace made
//! for the test (a veth pair on a private /30), and the host's network.
//! Traffic goes only to that namespace and to loopback.

use std::process::Command;

use integration::cri::{http_get, serve_http_script};

use crate::Containerd;

/// A network namespace with one veth pair; removed (with the pair) on drop.
struct TestNetns {
    name: String,
    /// The address inside the namespace.
    inner: String,
}

impl TestNetns {
    fn new(tag: u32) -> TestNetns {
        let pid = std::process::id();
        let name = format!("rsn{pid}-{tag}");
        let (host_if, ns_if) = (
            format!("vh{}{tag}", pid % 100_000),
            format!("vn{}{tag}", pid % 100_000),
        );
        let net = format!("10.213.{}.{}", pid % 250, 4 * tag);
        let last = |n: u32| {
            let (base, _) = net.rsplit_once('.').unwrap();
            format!("{base}.{}", 4 * tag + n)
        };
        let (outer, inner) = (last(1), last(2));
        let n = TestNetns {
            name: name.clone(),
            inner: inner.clone(),
        };
        for args in [
            vec!["netns", "add", &name],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            vec!["link", "set", &ns_if, "netns", &name],
            vec!["addr", "add", &format!("{outer}/30"), "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec![
                "-n",
                &name,
                "addr",
                "add",
                &format!("{inner}/30"),
                "dev",
                &ns_if,
            ],
            vec!["-n", &name, "link", "set", &ns_if, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            let st = Command::new("ip").args(&args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        }
        n
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn a_pod_namespace_gets_gvisors_stack_and_serves_http() {
    let ns = TestNetns::new(1);
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
