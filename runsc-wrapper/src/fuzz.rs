//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpus: each feeds raw bytes to the parsers of what runsc
//! and its sandbox send back, as the bytes would arrive. Any input may be
//! refused; none may panic, hang or make one of them hold more than it read
//! (the control socket's reply is bounded by [`urpc::MAX_REPLY`]).

use std::{collections::HashMap, path::Path};

use crate::{
    binary::parse_flag_names,
    control::{self, process::ExecArgs, state, urpc, Dialect},
    error::last_log_error,
    pid_file,
    types::{Container, Event, StatsEvent, TopResults, WaitResult},
};

/// A sandbox's state file (`<container>_sandbox:<sandbox>.state`), read by
/// the direct control path.
pub fn state_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = state::parse(Path::new("fuzz.state"), text) {
        let _ = state::check_status(&s.status, &["running", "paused"]);
    }
}

/// The JSON runsc prints: `state`, `list`, `ps --format json`, `wait`,
/// `events` lines.
pub fn cli_json(data: &[u8]) {
    let _ = serde_json::from_slice::<Container>(data);
    let _ = serde_json::from_slice::<Option<Vec<Container>>>(data);
    let _ = serde_json::from_slice::<Option<Vec<i32>>>(data);
    let _ = serde_json::from_slice::<WaitResult>(data);
    if let Ok(e) = serde_json::from_slice::<Event>(data) {
        let _ = e.stats();
    }
    let _ = serde_json::from_slice::<StatsEvent>(data);
}

/// The text runsc writes: its log (the last error in a chunk), `--help`'s
/// flag list, `--version`, pid files and `ps`'s table.
pub fn cli_text(data: &[u8]) {
    let _ = last_log_error(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_flag_names(text);
    let _ = Dialect::for_version(text);
    let _ = pid_file::parse(text);
    let top = TopResults::parse(text);
    for row in &top.processes {
        assert!(
            row.len() <= top.headers.len(),
            "a ps row wider than its header"
        );
    }
}

/// A reply on the sandbox's control socket, decoded as each call's result.
pub fn control_reply(data: &[u8]) {
    if !matches!(urpc::reply_complete(data), Ok(true)) {
        return;
    }
    let _ = urpc::decode_reply::<i64>(data);
    let _ = urpc::decode_reply::<u32>(data).map(control::WaitStatus);
    let _ = urpc::decode_reply::<Option<Vec<control::ProcessInfo>>>(data);
    if let Ok(out) = urpc::decode_reply::<control::EventOut>(data) {
        let usage: HashMap<String, u64> = out.container_usage.unwrap_or_default();
        for host in [None, Some(0), Some(1), Some(u64::MAX)] {
            let share = control::cpu_share(&usage, "c", host);
            if let Some(cg) = host.filter(|&cg| cg > 0 && !usage.is_empty()) {
                assert!(share <= cg, "a container's share above the sandbox's total");
            }
        }
    }
}

/// An exec's process spec (from containerd) as the direct exec sends it.
pub fn exec_process(data: &[u8]) {
    if let Ok(p) = serde_json::from_slice::<oci_spec::runtime::Process>(data) {
        let _ = ExecArgs::from_process("c", &p, false);
        let _ = ExecArgs::from_process("c", &p, true);
    }
}
