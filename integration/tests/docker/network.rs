//! Docker's networks: the host's (`--network host`), none, the default
//! bridge (the test's own bridge: the container gets an address on it and
//! answers there), a port published on 127.0.0.1 (through docker-proxy:
//! there are no iptables rules), and a user-defined bridge network where a
//! client container reaches a server container by address, and by name
//! through Docker's DNS server (which gVisor's own network stack cannot
//! reach: that one is runc's alone).

use std::{
    io::Read,
    net::TcpListener,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use integration::cri::{http_get, serve_http_script};

use crate::{assert_ok, free_port, run, run_detached, Dockerd, OutputExt};

/// Shell text that sends an HTTP GET to `host` port `port` and prints the
/// answer, retrying while the server starts (busybox's `nc`: its `wget`
/// crashes in the static build). With `serve`, a server on 127.0.0.1:8080
/// is started in the background first.
fn fetch(host: &str, port: u16, serve: bool) -> String {
    let server = if serve {
        // Without -f, httpd goes to the background once it listens.
        "mkdir -p /www && echo hello-from-gvisor > /www/index.html && httpd -p 127.0.0.1:8080 -h /www && "
    } else {
        ""
    };
    format!(
        "{server}for i in $(seq 1 25); do \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port} && exit 0; sleep 0.2; done; exit 1"
    )
}

/// Accepts one connection on `listener` (within 30 s) and returns what the
/// peer sent.
fn receive_once(listener: TcpListener) -> JoinHandle<String> {
    thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut got = String::new();
                    let _ = s.read_to_string(&mut got);
                    return got;
                }
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => return format!("nothing received: {e}"),
            }
        }
    })
}

/// Shell text that resolves `name` with busybox's `nslookup` (which asks
/// resolv.conf's server itself: the static build's libc resolver cannot)
/// and then does [`fetch`] from that address.
fn fetch_by_name(name: &str, port: u16) -> String {
    format!(
        "ip=$(nslookup {name} | awk '/^Address/ {{a=$NF}} END {{print a}}'); \
         echo \"{name} is $ip\" >&2; [ -n \"$ip\" ] || exit 1; {}",
        fetch("$ip", port, false)
    )
}

/// Starts a container named `name` serving HTTP on port 80.
fn web_server(d: &Dockerd, rt: crate::Runtime, name: &str, args: &[&str]) {
    run_detached(d, rt, name, args, &["sh", "-c", &serve_http_script("80")]);
}

on_both_runtimes! {
    /// `--network host`: a server in the container listens on the host's
    /// loopback.
    fn host_network(d, rt) {
        let port = free_port();
        run_detached(
            d,
            rt,
            "hostnet",
            &["--network", "host"],
            &["sh", "-c", &serve_http_script(&format!("127.0.0.1:{port}"))],
        );
        let body = http_get(&format!("127.0.0.1:{port}"));
        assert!(body.contains("hello-from-gvisor"), "{body}");
    }
}

on_both_runtimes! {
    /// `--network none`: loopback only, and it works.
    fn no_network(d, rt) {
        let script = format!(
            "ip -o link | cut -d: -f2 | tr -d ' '; {}",
            fetch("127.0.0.1", 8080, true)
        );
        let out = run(d, rt, &["--network", "none"], &["sh", "-c", &script]);
        assert_ok(&out, "run --network none");
        let text = out.out();
        assert!(text.starts_with("lo\nHTTP/1.") && text.ends_with("\nhello-from-gvisor\n"), "{text}");
    }
}

on_both_runtimes! {
    /// The default bridge: the container has an address on the test's
    /// bridge, sees it on its interface, and the host reaches its server
    /// there.
    fn default_bridge(d, rt) {
        web_server(d, rt, "web", &[]);
        let ip = d.inspect("web", "{{.NetworkSettings.IPAddress}}");
        assert!(ip.starts_with(&format!("{}.", d.bridge_prefix())), "address {ip:?}");
        let inside = d.docker_text(&["exec", "web", "ip", "-o", "-4", "addr"]);
        assert!(inside.contains(&format!("inet {ip}/24")), "{inside}");
        let body = http_get(&format!("{ip}:80"));
        assert!(body.contains("hello-from-gvisor"), "{body}");
        // And the container reaches the host's side of the bridge.
        let gateway = format!("{}.1", d.bridge_prefix());
        let listener = TcpListener::bind(format!("{gateway}:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = receive_once(listener);
        let out = d.docker(&[
            "exec",
            "web",
            "sh",
            "-c",
            &format!("echo hello-host | nc -w 5 {gateway} {port}"),
        ]);
        assert_ok(&out, "connect to the bridge's address");
        assert_eq!(received.join().unwrap(), "hello-host\n");
    }
}

on_both_runtimes! {
    /// `-p 127.0.0.1:<port>:80`: the container's server answers on the
    /// host's loopback.
    fn published_port(d, rt) {
        let port = free_port();
        web_server(d, rt, "published", &["-p", &format!("127.0.0.1:{port}:80")]);
        assert_eq!(
            d.docker_text(&["port", "published", "80"]),
            format!("127.0.0.1:{port}")
        );
        let body = http_get(&format!("127.0.0.1:{port}"));
        assert!(body.contains("hello-from-gvisor"), "{body}");
    }
}

on_both_runtimes! {
    /// A user-defined bridge network (a private subnet, a bridge Docker
    /// makes): a server and a client container on it talk, as a two-service
    /// app does without compose.
    fn user_network_two_containers(d, rt) {
        let prefix = d.create_network("app");
        web_server(d, rt, "backend", &["--network", "app"]);
        let ip = d.inspect("backend", "{{(index .NetworkSettings.Networks \"app\").IPAddress}}");
        assert!(ip.starts_with(&format!("{prefix}.")), "address {ip:?}");
        let out = run(
            d,
            rt,
            &["--network", "app"],
            &["sh", "-c", &fetch(&ip, 80, false)],
        );
        assert_ok(&out, "the client's request");
        assert!(out.out().contains("hello-from-gvisor"), "{}", out.out());
    }
}

on_both_runtimes! {
    runsc_ignored: "gVisor's network stack keeps 127.0.0.11 inside the sandbox: \
        Docker's DNS server is a host socket in the namespace behind an iptables DNAT",
    /// On a user-defined network containers find each other by name
    /// (Docker's embedded DNS server at 127.0.0.11).
    fn user_network_by_name(d, rt) {
        d.create_network("named");
        web_server(d, rt, "api", &["--network", "named"]);
        let out = run(
            d,
            rt,
            &["--network", "named"],
            &["sh", "-c", &fetch_by_name("api", 80)],
        );
        assert_ok(&out, "the client's request by name");
        assert!(out.out().contains("hello-from-gvisor"), "{}", out.out());
    }
}
