//! What the service puts around a workspace container: a network namespace
//! (made here for the test: a veth pair on a private /30) that gVisor's
//! stack serves from, and the host's timezone (`/etc/localtime` bind mount
//! and `TZ`) and resolv.conf bind mounts, read-only, seen inside gVisor.
//! Traffic goes only to that namespace.

use std::{os::unix::fs::MetadataExt, process::Command, time::Duration};

use integration::cri::{http_get, serve_http_script};
use test_support::netns::TestNetns;

use super::{unique, Agent};
use crate::support::{create_container, rt, Containerd};

#[test]
fn a_network_namespace_made_for_the_test_is_the_tasks() {
    let ns = TestNetns::new("agentns", "10.214", ["va", "vb"], 1);
    let c = Containerd::start();
    let id = unique("agent-net");
    let with_ns = format!("network:{}", ns.path());
    create_container(
        &c,
        &id,
        &["--with-ns", &with_ns],
        &["sh", "-c", &serve_http_script("8080")],
    );
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        let pid = a.start_container(&id).await;
        // SetupNetwork works on the task pid's namespace: it is the one made
        // here, and gVisor's stack has its address.
        let of_task = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
        let made = std::fs::metadata(ns.path()).unwrap();
        assert_eq!(
            (of_task.dev(), of_task.ino()),
            (made.dev(), made.ino()),
            "pid {pid} is not in {}",
            ns.path()
        );
        let addrs = a.exec_task(&id, &["ip", "addr"]).await;
        assert_eq!(addrs.exit_code, 0, "{}", addrs.stderr);
        assert!(addrs.stdout.contains(&ns.inner), "{}", addrs.stdout);
        let body = http_get(&format!("{}:8080", ns.inner));
        assert!(body.contains("hello-from-gvisor"), "{body}");
        a.stop_and_delete_task(&id, Duration::from_secs(2)).await;
    });
    c.stop_and_check();
}

#[test]
fn timezone_and_resolv_conf_bind_mounts_are_seen_inside_gvisor() {
    let host = tempfile::Builder::new()
        .prefix("agent-conf-")
        .tempdir()
        .unwrap();
    let resolv = host.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\nsearch agent.test\n").unwrap();
    // A zone the container's default (UTC) is not: Tokyo, JST, no DST.
    let zone = std::fs::read("/usr/share/zoneinfo/Asia/Tokyo").expect("tzdata's Asia/Tokyo");
    let localtime = host.path().join("localtime");
    std::fs::write(&localtime, &zone).unwrap();

    let c = Containerd::start();
    let id = unique("agent-tz");
    let mount = |src: &std::path::Path, dst: &str| {
        format!("type=bind,src={},dst={dst},options=rbind:ro", src.display())
    };
    let (m1, m2) = (
        mount(&resolv, "/etc/resolv.conf"),
        mount(&localtime, "/etc/localtime"),
    );
    create_container(
        &c,
        &id,
        &["--mount", &m1, "--mount", &m2, "--env", "TZ=Asia/Tokyo"],
        &["sleep", "1000"],
    );
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        a.start_container(&id).await;
        let out = a.exec_task(&id, &["cat", "/etc/resolv.conf"]).await;
        assert_eq!(
            (out.exit_code, out.stdout.as_str()),
            (0, "nameserver 192.0.2.53\nsearch agent.test\n"),
            "{}",
            out.stderr
        );
        // The zone file arrives byte for byte (md5sum, since the FIFOs carry text).
        let host_sum = Command::new("md5sum").arg(&localtime).output().unwrap();
        let host_sum = String::from_utf8(host_sum.stdout).unwrap();
        let out = a.exec_task(&id, &["md5sum", "/etc/localtime"]).await;
        assert_eq!(out.exit_code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout.split_whitespace().next(),
            host_sum.split_whitespace().next()
        );
        // Time is local to it: libc reads /etc/localtime (the image has no
        // zoneinfo directory for TZ's name).
        let out = a
            .exec_task(&id, &["env", "-u", "TZ", "date", "+%Z %z"])
            .await;
        assert_eq!(
            (out.exit_code, out.stdout.as_str()),
            (0, "JST +0900\n"),
            "{}",
            out.stderr
        );
        let out = a.exec_task(&id, &["sh", "-c", "echo $TZ"]).await;
        assert_eq!(out.stdout, "Asia/Tokyo\n");
        // Read-only, as the service mounts them.
        for f in ["/etc/resolv.conf", "/etc/localtime"] {
            let out = a
                .exec_task(&id, &["sh", "-c", &format!("echo x > {f}")])
                .await;
            assert_ne!(out.exit_code, 0, "{f} is writable");
        }
        assert_eq!(
            std::fs::read_to_string(&resolv).unwrap(),
            "nameserver 192.0.2.53\nsearch agent.test\n"
        );
        a.stop_and_delete_task(&id, Duration::from_secs(2)).await;
    });
    c.stop_and_check();
}
