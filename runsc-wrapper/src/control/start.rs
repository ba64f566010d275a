//! Starting a sandbox's root container directly, as `runsc start` does for
//! a root container whose network is `none` or `host`: under the container's
//! lock, loopback links for `none`, `containerManager.StartRoot`, then the
//! `running` status in the state file. Anything that needs more of the CLI
//! (poststart hooks, an OOM score to spread over the sandbox and gofer,
//! `--network=sandbox`'s interface moves, a member container) is
//! [`ControlFailure::Unsupported`] and left to it.

use std::{fs, path::Path, time::Duration};

use super::{control_error, urpc::Conn, ControlFailure, Sandbox};
use crate::Result;

/// The network a root container was created with (its `--network` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootNetwork {
    /// `--network=none`: loopback only, set up before the start.
    None,
    /// `--network=host`: nothing to set up.
    Host,
}

impl RootNetwork {
    /// From the `--network` flag's value; `None` for modes only the CLI
    /// can set up (`sandbox`, the default).
    pub fn from_flag(value: Option<&str>) -> Option<RootNetwork> {
        match value {
            Some("none") => Some(RootNetwork::None),
            Some("host") => Some(RootNetwork::Host),
            _ => None,
        }
    }
}

/// `Network.CreateLinksAndRoutes` for loopback, as runsc 0.0~20221219 sends
/// it (0.0~20240729 accepts it; its extra fields default to false).
fn loopback_links() -> serde_json::Value {
    let empty_route = serde_json::json!({"Route": {"Destination": {"IP": "", "Mask": null}, "Gateway": ""}, "Name": ""});
    serde_json::json!({
        "LoopbackLinks": [{
            "Name": "lo",
            "Addresses": [{"Address": "127.0.0.1", "PrefixLen": 8}, {"Address": "::1", "PrefixLen": 128}],
            "Routes": [
                {"Destination": {"IP": "127.0.0.0", "Mask": "/wAAAA=="}, "Gateway": ""},
                {"Destination": {"IP": "::1", "Mask": "/////////////////////w=="}, "Gateway": ""}
            ]
        }],
        "FDBasedLinks": null,
        "XDPLinks": null,
        "Defaultv4Gateway": empty_route,
        "Defaultv6Gateway": empty_route,
        "PCAP": false
    })
}

/// Why a root start must go through the CLI, from the state file's JSON.
fn cli_only(v: &serde_json::Value) -> Option<String> {
    let id = v["id"].as_str().unwrap_or_default();
    if v["sandbox"]["id"].as_str() != Some(id) {
        return Some("not the sandbox's root container".into());
    }
    if v["status"].as_str() != Some("created") {
        return Some(format!("status is {}, not created", v["status"]));
    }
    let spec = &v["spec"];
    let hooks = spec["hooks"]["poststart"]
        .as_array()
        .is_some_and(|h| !h.is_empty());
    if hooks {
        return Some("the spec has poststart hooks".into());
    }
    if !spec["process"]["oomScoreAdj"].is_null() {
        return Some("the spec sets an OOM score".into());
    }
    None
}

impl Sandbox {
    /// Starts this (root) container as `runsc start` would.
    pub async fn start_root(&self, network: RootNetwork, deadline: Duration) -> Result<()> {
        let (path, address, sbid) = (
            self.state.path.clone(),
            self.state.address.clone(),
            self.state.sandbox_id.clone(),
        );
        let cid = self.cid.clone();
        let method = "containerManager.StartRoot";
        let fail = move |f| control_error(method, &cid, f);
        // The lock is a blocking flock held across the calls: its own thread.
        let run =
            tokio::task::spawn_blocking(move || -> std::result::Result<(), ControlFailure> {
                let _lock = super::state::Locked::take(&path)
                    .map_err(|e| ControlFailure::State(e.to_string()))?;
                let text =
                    fs::read_to_string(&path).map_err(|e| ControlFailure::State(e.to_string()))?;
                let mut v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| ControlFailure::State(e.to_string()))?;
                if let Some(why) = cli_only(&v) {
                    return Err(ControlFailure::Unsupported(why));
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ControlFailure::Gone)?;
                rt.block_on(async {
                    let mut conn = Conn::connect(&address).map_err(ControlFailure::Gone)?;
                    let calls = async {
                        if network == RootNetwork::None {
                            conn.call::<_, serde_json::Value>(
                                "Network.CreateLinksAndRoutes",
                                &loopback_links(),
                                &[],
                            )
                            .await?;
                        }
                        conn.call::<_, serde_json::Value>("containerManager.StartRoot", &sbid, &[])
                            .await
                    };
                    tokio::time::timeout(deadline, calls)
                        .await
                        .map_err(|_| ControlFailure::Timeout(deadline))?
                        .map_err(super::classify)
                })?;
                v["status"] = serde_json::Value::String("running".into());
                write_state(&path, &v).map_err(|e| ControlFailure::State(e.to_string()))
            });
        run.await
            .unwrap_or_else(|e| Err(ControlFailure::State(e.to_string())))
            .map_err(fail)
    }
}

fn write_state(path: &Path, v: &serde_json::Value) -> std::io::Result<()> {
    fs::write(path, serde_json::to_vec(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_created_root_starts_directly() {
        let base = serde_json::json!({"id": "sb", "status": "created", "sandbox": {"id": "sb"}, "spec": {"process": {}}});
        assert_eq!(cli_only(&base), None);
        let mut member = base.clone();
        member["id"] = "c2".into();
        assert!(cli_only(&member).is_some());
        let mut running = base.clone();
        running["status"] = "running".into();
        assert!(
            cli_only(&running).is_some(),
            "a second StartRoot would block forever"
        );
        let mut hooks = base.clone();
        hooks["spec"]["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/true"}]});
        assert!(cli_only(&hooks).is_some());
        let mut oom = base;
        oom["spec"]["process"]["oomScoreAdj"] = 100.into();
        assert!(cli_only(&oom).is_some());
        assert_eq!(
            RootNetwork::from_flag(Some("none")),
            Some(RootNetwork::None)
        );
        assert_eq!(
            RootNetwork::from_flag(None),
            None,
            "runsc's default is sandbox"
        );
    }

    #[test]
    fn loopback_is_what_runsc_sends() {
        let l = loopback_links();
        assert_eq!(
            l["LoopbackLinks"][0]["Routes"][0]["Destination"]["Mask"],
            "/wAAAA=="
        );
        assert_eq!(l["FDBasedLinks"], serde_json::Value::Null);
    }
}
