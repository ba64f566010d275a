//! A network namespace made for one test: a veth pair on a private /30,
//! one end in the namespace, loopback up. Removed (with the pair) on drop.
//! Traffic is only ever sent to the address inside.

use std::process::Command;

/// A test's network namespace.
pub struct TestNetns {
    name: String,
    /// The address inside the namespace.
    pub inner: String,
    _abort: crate::abort::Registered,
}

impl TestNetns {
    /// Namespace `<prefix><pid>-<tag>` on `<net>.<pid % 250>.<4 tag>/30`
    /// (`net`: the first two octets of a private range a tier keeps to
    /// itself, e.g. `10.213`); the two interfaces' names start with
    /// `if_prefix`.
    pub fn new(prefix: &str, net: &str, if_prefix: [&str; 2], tag: u32) -> TestNetns {
        let pid = std::process::id();
        let name = format!("{prefix}{pid}-{tag}");
        let (host_if, ns_if) = (
            format!("{}{}{tag}", if_prefix[0], pid % 100_000),
            format!("{}{}{tag}", if_prefix[1], pid % 100_000),
        );
        let base = format!("{net}.{}", pid % 250);
        let (outer, inner) = (
            format!("{base}.{}", 4 * tag + 1),
            format!("{base}.{}", 4 * tag + 2),
        );
        let doomed = name.clone();
        let n = TestNetns {
            name: name.clone(),
            inner: inner.clone(),
            _abort: crate::abort::on_abort(move || delete_netns(&doomed)),
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
            let st = Command::new("ip").args(&args).status().expect("run ip");
            assert!(st.success(), "ip {args:?}");
        }
        n
    }

    /// The namespace's path, for `--with-ns network:<path>`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// Deleting the namespace deletes the veth pair with it.
fn delete_netns(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).status();
}
