//! A private CNI network for one CRI test: a bridge of its own on a private
//! /24 (no masquerade), host-local addresses kept in the test's directory,
//! portmap for hostPort. Dropping it removes the bridge, the iptables chains
//! portmap made (when they did not exist before) and restores
//! `net.ipv4.ip_forward`, which the bridge plugin turns on.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// Where Debian's `containernetworking-plugins` installs the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// One test's CNI network.
pub struct CniNetwork {
    /// Directory holding the network configuration (containerd's conf_dir).
    pub conf_dir: PathBuf,
    /// The bridge's name.
    pub bridge: String,
    /// The subnet's first three octets, e.g. `10.214.7`.
    pub prefix: String,
    netns_before: BTreeSet<String>,
    /// What to undo (on drop, or by the panic hook of a binary that aborts).
    undo: Undo,
    _abort: crate::abort::Registered,
}

/// What a network added to the host, to be taken away again.
#[derive(Debug, Clone)]
struct Undo {
    bridge: String,
    ip_forward: Option<String>,
    chains_before: BTreeSet<String>,
}

/// Chains in iptables' nat table whose names start with `CNI-`.
fn cni_chains() -> BTreeSet<String> {
    let out = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with("CNI-"))
        .map(str::to_string)
        .collect()
}

/// Network namespaces containerd's CRI plugin made (`cni-<uuid>`).
pub fn cni_netns() -> BTreeSet<String> {
    fs::read_dir("/var/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cni-"))
                .collect()
        })
        .unwrap_or_default()
}

impl CniNetwork {
    /// Writes the configuration into `dir/cni` for a network numbered `n`
    /// (distinct per test in this process).
    pub fn new(dir: &Path, n: u32) -> CniNetwork {
        let pid = std::process::id();
        let bridge = format!("cnirs{}{n}", pid % 10_000);
        let prefix = format!("10.214.{}", (pid * 7 + n) % 250);
        let conf_dir = dir.join("cni");
        fs::create_dir_all(&conf_dir).expect("cni dir");
        let conf = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": format!("runsc-test-{n}"),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": format!("{prefix}.0/24")}]],
                        "dataDir": dir.join("ipam"),
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        fs::write(
            conf_dir.join("10-runsc-test.conflist"),
            serde_json::to_vec_pretty(&conf).expect("json"),
        )
        .expect("write cni conf");
        let undo = Undo {
            bridge: bridge.clone(),
            ip_forward: fs::read_to_string(IP_FORWARD).ok(),
            chains_before: cni_chains(),
        };
        let on_abort = undo.clone();
        CniNetwork {
            conf_dir,
            bridge,
            prefix,
            netns_before: cni_netns(),
            undo,
            _abort: crate::abort::on_abort(move || on_abort.run()),
        }
    }

    /// CRI network namespaces made since this network was set up.
    pub fn new_netns(&self) -> Vec<String> {
        cni_netns()
            .difference(&self.netns_before)
            .cloned()
            .collect()
    }
}

impl Drop for CniNetwork {
    fn drop(&mut self) {
        self.undo.run();
    }
}

impl Undo {
    /// Removes the bridge and the chains added since, restores ip_forward.
    fn run(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        // portmap's chains (and the jumps to them) that this test added.
        let added: Vec<String> = cni_chains()
            .difference(&self.chains_before)
            .cloned()
            .collect();
        if !added.is_empty() {
            let rules = Command::new("iptables")
                .args(["-t", "nat", "-S"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for rule in rules.lines().filter(|r| r.starts_with("-A ")) {
                if added.iter().any(|c| rule.contains(&format!("-j {c}"))) {
                    // iptables -S quotes comments as a shell would: let sh split it.
                    let delete = format!("iptables -t nat {}", rule.replacen("-A ", "-D ", 1));
                    let _ = Command::new("sh").args(["-c", &delete]).output();
                }
            }
            for c in &added {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-F", c])
                    .output();
            }
            for c in &added {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-X", c])
                    .output();
            }
        }
        if let Some(v) = &self.ip_forward {
            let _ = fs::write(IP_FORWARD, v);
        }
    }
}
