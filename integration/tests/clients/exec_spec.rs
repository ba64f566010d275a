//! An exec whose process spec leaves fields out, as a client that writes
//! its own spec may send it: `runsc exec` runs it with the container's
//! `cwd`, `env` and capabilities, and as root when no user is given. The
//! shim must run the same process whether the exec goes over the sandbox's
//! control socket or through the runsc CLI (the matrix runs this tier both
//! ways).

use serde_json::json;

use crate::support::{create_container, rt, Client, Containerd, Fifos};

const REPORT: &str = "pwd; echo FOO=$FOO; grep -E '^Cap(Eff|Bnd)' /proc/self/status; id -u";

/// Runs `process` as exec `exec_id` of `id`; returns its stdout and status.
async fn run(
    client: &Client,
    id: &str,
    exec_id: &str,
    process: serde_json::Value,
) -> (String, u32) {
    let io = Fifos::new();
    let (out, err) = (io.stdout(), io.stderr());
    client.exec_process(id, exec_id, process, &io).await;
    client.start(id, exec_id).await;
    let status = client.wait(id, exec_id).await;
    let text = out.wait_eof().await;
    let errors = err.wait_eof().await;
    client.delete_process(id, exec_id).await;
    assert_eq!(errors, "", "exec {exec_id} wrote to stderr");
    (text, status)
}

#[test]
fn an_exec_that_leaves_out_cwd_env_user_and_capabilities_gets_the_containers() {
    let c = Containerd::start();
    let id = "exec-minimal";
    create_container(
        &c,
        id,
        &["--env", "FOO=bar", "--cwd", "/tmp"],
        &["sleep", "1000"],
    );
    rt().block_on(async {
        let client = Client::connect(&c).await;
        let io = Fifos::new();
        client.create_task(id, &io).await;
        client.start(id, "").await;

        // The container's own process with other args: what Docker sends.
        let mut full = client.spec(id).await["process"].clone();
        full["args"] = json!(["/bin/sh", "-c", REPORT]);
        let (want, status) = run(&client, id, "full", full.clone()).await;
        assert_eq!(status, 0);
        assert!(want.starts_with("/tmp\nFOO=bar\nCapEff:"), "{want}");

        // Only the args: the rest is the container's, the user root.
        let minimal = json!({"args": ["/bin/sh", "-c", REPORT]});
        let (got, status) = run(&client, id, "minimal", minimal).await;
        assert_eq!(status, 0);
        assert_eq!(got, want, "a minimal exec runs as the container's process");

        // What an exec does set stays its own: an empty env, a cwd, a user.
        let mut own = full;
        own["env"] = json!([]);
        own["cwd"] = json!("/");
        own["user"] = json!({"uid": 1000, "gid": 1000});
        let (got, status) = run(&client, id, "own", own).await;
        assert_eq!(status, 0);
        assert!(got.starts_with("/\nFOO=\n"), "{got}");
        assert!(got.ends_with("\n1000\n"), "{got}");

        client.kill(id, "", nix::sys::signal::Signal::SIGKILL).await;
        assert_eq!(client.wait(id, "").await, 137);
        client.delete_task(id).await;
    });
    c.stop_and_check();
}
