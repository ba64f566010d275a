//! An exec's process spec, completed as `runsc exec` completes one: a
//! `cwd`, `env` or `capabilities` the client left out is the container's
//! (gVisor's `runsc/cmd/exec.go`, `Execute`: "Replace empty settings with
//! defaults from container"), and a missing `user` is uid 0 and gid 0, the
//! zero value runsc's Go types read it as. Done once, at Exec, so an exec
//! that goes over the sandbox's control socket runs the same process as one
//! that goes through the runsc CLI.

use serde_json::Value;

/// Fields whose absence means "the container's".
const FROM_CONTAINER: [&str; 3] = ["cwd", "env", "capabilities"];

/// Whether [`complete`] needs the container's process for `process`.
pub fn needs_container(process: &Value) -> bool {
    FROM_CONTAINER.iter().any(|f| left_out(process.get(*f), f))
}

/// Fills what `process` left out from `container` (the container's own
/// `process`), and a missing `user` with uid 0 and gid 0. Returns the names
/// of the fields it filled. An empty `env` list stays empty, as in runsc.
pub fn complete(process: &mut Value, container: &Value) -> Vec<&'static str> {
    let mut filled = Vec::new();
    let Some(obj) = process.as_object_mut() else {
        return filled;
    };
    for field in FROM_CONTAINER {
        if !left_out(obj.get(field), field) {
            continue;
        }
        match container.get(field) {
            Some(v) if !v.is_null() => {
                obj.insert(field.to_string(), v.clone());
                filled.push(field);
            }
            // runsc would send the container's empty value: so do we (a
            // missing or null env or capabilities already reads as none).
            _ if field == "cwd" => {
                obj.insert(field.to_string(), Value::String(String::new()));
            }
            _ => {}
        }
    }
    if obj.get("user").is_none_or(Value::is_null) {
        obj.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
        filled.push("user");
    }
    filled
}

/// Whether `value`, found under `field`, counts as not given (runsc's
/// test is the Go zero value: an empty `cwd`, a nil `env` or capabilities).
fn left_out(value: Option<&Value>, field: &str) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => field == "cwd" && s.is_empty(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Value {
        json!({
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sleep", "100"],
            "env": ["PATH=/bin", "FOO=bar"],
            "cwd": "/tmp",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        })
    }

    #[test]
    fn what_a_minimal_exec_leaves_out_is_the_containers() {
        let mut p = json!({"args": ["pwd"]});
        assert!(needs_container(&p));
        let filled = complete(&mut p, &container());
        assert_eq!(filled, ["cwd", "env", "capabilities", "user"]);
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["env"], json!(["PATH=/bin", "FOO=bar"]));
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_KILL"]));
        // Not the container's user: runsc reads a missing one as root.
        assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
        let typed: oci_spec::runtime::Process = serde_json::from_value(p).unwrap();
        assert_eq!(typed.cwd(), std::path::Path::new("/tmp"));
    }

    #[test]
    fn what_an_exec_sets_stays_its_own() {
        let mut p = json!({
            "args": ["id"], "cwd": "/", "env": [], "user": {"uid": 5, "gid": 6},
            "capabilities": {"bounding": []}
        });
        assert!(!needs_container(&p));
        assert!(complete(&mut p, &container()).is_empty());
        assert_eq!(p["cwd"], "/");
        assert_eq!(p["env"], json!([]), "an empty env is not a missing one");
        assert_eq!(p["user"]["uid"], 5);
        assert_eq!(p["capabilities"]["bounding"], json!([]));
    }

    #[test]
    fn empty_and_null_count_as_left_out() {
        let mut p = json!({"args": ["ls"], "cwd": "", "env": null, "user": {"uid": 0, "gid": 0}});
        assert!(needs_container(&p));
        assert_eq!(
            complete(&mut p, &container()),
            ["cwd", "env", "capabilities"]
        );
        // A container without those fields leaves the exec without them,
        // and the typed spec still parses.
        let mut q = json!({"args": ["ls"]});
        complete(&mut q, &json!({"args": ["sh"]}));
        assert_eq!(
            q,
            json!({"args": ["ls"], "cwd": "", "user": {"uid": 0, "gid": 0}})
        );
        assert!(serde_json::from_value::<oci_spec::runtime::Process>(q).is_ok());
        // Not an object: nothing to fill, and the caller's parse says why.
        let mut r = json!(["ls"]);
        assert!(complete(&mut r, &container()).is_empty());
    }
}
