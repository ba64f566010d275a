//! Serde types for what runsc prints: `state`/`list`, `events`, `wait`, `ps`.

use std::{collections::HashMap, path::PathBuf};

use serde::{Deserialize, Serialize};

/// A container as `runsc state` / `runsc list --format=json` describe it
/// (the OCI state). runsc 20221219 prints no `created` time in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// OCI runtime-spec version.
    #[serde(rename = "ociVersion", default)]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Lifecycle state.
    pub status: Status,
    /// Sandbox pid; -1 once stopped, 0 if unknown.
    #[serde(default)]
    pub pid: i32,
    /// Bundle directory.
    #[serde(default)]
    pub bundle: PathBuf,
    /// Creation time (RFC 3339), when runsc provides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Annotations from the spec.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Container lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being paused.
    Pausing,
    /// Exited (or checkpointed without `--leave-running`).
    Stopped,
    /// Anything else.
    #[serde(other)]
    Unknown,
}

/// One line of `runsc events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event type; runsc 20221219 only emits `stats`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Container id.
    #[serde(default)]
    pub id: String,
    /// Payload, shaped by `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Event {
    /// The payload as [`Stats`] for a `stats` event.
    pub fn stats(&self) -> Option<Stats> {
        if self.kind != "stats" {
            return None;
        }
        serde_json::from_value(self.data.clone()?).ok()
    }
}

/// A `stats` event with its payload parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsEvent {
    /// Always `stats` for a valid answer.
    #[serde(rename = "type")]
    pub kind: String,
    /// Container id.
    #[serde(default)]
    pub id: String,
    /// The statistics.
    #[serde(default)]
    pub data: Option<Stats>,
}

/// Resource statistics (runc's `Stats` layout). runsc 20221219 fills only
/// `cpu.usage.total`, `memory.usage.usage` (whole sandbox) and
/// `pids.current` (whole sandbox).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// CPU.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Pids.
    pub pids: Pids,
}

/// CPU statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// Usage in nanoseconds.
    pub usage: CpuUsage,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// CPU time consumed, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    /// Total.
    pub total: u64,
    /// Per CPU.
    pub percpu: Vec<u64>,
    /// Kernel mode.
    pub kernel: u64,
    /// User mode.
    pub user: u64,
}

/// CFS throttling counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throttling {
    /// Periods.
    pub periods: u64,
    /// Throttled periods.
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    /// Throttled time (ns).
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

/// Memory statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Page cache.
    pub cache: u64,
    /// Memory usage.
    pub usage: MemoryEntry,
    /// Swap usage.
    pub swap: MemoryEntry,
    /// Kernel memory.
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers.
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
}

/// One memory counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    /// Limit in bytes (0 = none reported).
    pub limit: u64,
    /// Usage in bytes.
    pub usage: u64,
    /// Peak usage.
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Pid counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    /// Current number of tasks.
    pub current: u64,
    /// Limit (0 = none).
    pub limit: u64,
}

/// `runsc wait` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResult {
    /// Container id.
    #[serde(default)]
    pub id: String,
    /// Exit code, or 128 + signal.
    #[serde(rename = "exitStatus")]
    pub exit_status: i32,
}

/// `runsc ps --format=table` as headers plus rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopResults {
    /// Column names (`UID PID PPID C TTY STIME TIME CMD`).
    pub headers: Vec<String>,
    /// One row per process; the last column (CMD) may contain spaces.
    pub processes: Vec<Vec<String>>,
}

impl TopResults {
    /// Parses the whitespace-aligned table.
    pub fn parse(table: &str) -> TopResults {
        let mut lines = table.lines().filter(|l| !l.trim().is_empty());
        let headers: Vec<String> = lines
            .next()
            .map(|h| h.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let n = headers.len();
        let processes = lines.map(|l| split_row(l, n)).collect();
        TopResults { headers, processes }
    }
}

/// Splits into `n` fields; the last keeps its inner spaces.
fn split_row(line: &str, n: usize) -> Vec<String> {
    let mut fields = Vec::with_capacity(n);
    let mut rest = line.trim();
    while fields.len() + 1 < n {
        let Some(end) = rest.find(char::is_whitespace) else {
            break;
        };
        fields.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() {
        fields.push(rest.to_string());
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real outputs of runsc 0.0~20221219.
    const STATE: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "id": "rwexp6537",
  "status": "running",
  "pid": 9155,
  "bundle": "/tmp/exp/b"
}"#;
    const LIST: &str = r#"[{"ociVersion":"1.0.2-dev","id":"rwexp6537","status":"created","pid":8995,"bundle":"/tmp/exp/b"}]"#;
    const STOPPED: &str = r#"{"ociVersion":"1.0.2-dev","id":"rwcr6537","status":"stopped","pid":-1,"bundle":"/tmp/exp/b"}"#;
    const STATS: &str = r#"{"type":"stats","id":"rwexp6537","data":{"cpu":{"usage":{"total":121628113}},"memory":{"usage":{"limit":0,"usage":2551808,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{"current":2}}}"#;
    const WAIT: &str = r#"{"id":"rwcr6537r","exitStatus":137}"#;
    const TABLE: &str =
        "UID       PID       PPID      C         TTY       STIME     TIME      CMD\n\
0         1         0         0         ?         08:11     0s        sh\n\
0         2         1         14        ?         08:11     10ms      sleep 100\n";

    #[test]
    fn parse_state_and_list() {
        let c: Container = serde_json::from_str(STATE).unwrap();
        assert_eq!(c.id, "rwexp6537");
        assert_eq!(c.status, Status::Running);
        assert_eq!(c.pid, 9155);
        assert_eq!(c.bundle, PathBuf::from("/tmp/exp/b"));
        assert_eq!(c.created, None);
        let l: Vec<Container> = serde_json::from_str(LIST).unwrap();
        assert_eq!(l[0].status, Status::Created);
        let s: Container = serde_json::from_str(STOPPED).unwrap();
        assert_eq!((s.status, s.pid), (Status::Stopped, -1));
        let odd: Container =
            serde_json::from_str(r#"{"id":"x","status":"weird","created":"2026-01-01T00:00:00Z","annotations":{"a":"b"}}"#)
                .unwrap();
        assert_eq!(odd.status, Status::Unknown);
        assert_eq!(odd.annotations["a"], "b");
    }

    #[test]
    fn parse_stats() {
        let e: Event = serde_json::from_str(STATS).unwrap();
        assert_eq!(e.kind, "stats");
        let s = e.stats().unwrap();
        assert_eq!(s.cpu.usage.total, 121628113);
        assert_eq!(s.memory.usage.usage, 2551808);
        assert_eq!(s.memory.kernel_tcp.limit, 0);
        assert_eq!(s.pids.current, 2);
        let se: StatsEvent = serde_json::from_str(STATS).unwrap();
        assert_eq!(se.data.unwrap(), s);
        let other: Event = serde_json::from_str(r#"{"type":"oom","id":"x"}"#).unwrap();
        assert!(other.stats().is_none());
    }

    #[test]
    fn parse_wait() {
        let w: WaitResult = serde_json::from_str(WAIT).unwrap();
        assert_eq!(w.exit_status, 137);
        assert_eq!(w.id, "rwcr6537r");
    }

    #[test]
    fn parse_top() {
        let t = TopResults::parse(TABLE);
        assert_eq!(
            t.headers,
            ["UID", "PID", "PPID", "C", "TTY", "STIME", "TIME", "CMD"]
        );
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.processes[0][1], "1");
        assert_eq!(t.processes[1][7], "sleep 100");
        assert_eq!(TopResults::parse(""), TopResults::default());
    }
}
