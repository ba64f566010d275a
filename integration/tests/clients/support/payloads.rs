//! Decoders for the `Any` payloads of `Metrics` ([`Stats`], cgroups v1 or
//! v2) and `ListPids` ([`ProcessDetails`]).

use containerd_client::types::v1::ProcessInfo;
use prost::Message;
use prost_types::Any;

/// What a client reads from `Metrics`, whatever the host's cgroup mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `io.containerd.cgroups.v1.Metrics` or `...v2.Metrics`.
    pub type_url: String,
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, in bytes.
    pub memory_usage: u64,
    /// Memory limit, in bytes (a huge number when unlimited on cgroup v1).
    pub memory_limit: u64,
    /// Processes (pids controller), or 0.
    pub pids: u64,
}

impl Stats {
    /// Decodes a `Metrics` payload.
    pub fn decode(any: &Any) -> Stats {
        let v = any.value.as_slice();
        let mut s = Stats {
            type_url: any.type_url.clone(),
            ..Default::default()
        };
        if any.type_url.ends_with("cgroups.v1.Metrics") {
            let m = cg1::Metrics::decode(v).unwrap();
            s.cpu_ns = m.cpu.and_then(|c| c.usage).map_or(0, |u| u.total);
            let usage = m.memory.and_then(|m| m.usage).unwrap_or_default();
            (s.memory_usage, s.memory_limit) = (usage.usage, usage.limit);
            s.pids = m.pids.map_or(0, |p| p.current);
        } else if any.type_url.ends_with("cgroups.v2.Metrics") {
            let m = cg2::Metrics::decode(v).unwrap();
            s.cpu_ns = m.cpu.map_or(0, |c| c.usage_usec * 1000);
            let mem = m.memory.unwrap_or_default();
            (s.memory_usage, s.memory_limit) = (mem.usage, mem.usage_limit);
            s.pids = m.pids.map_or(0, |p| p.current);
        } else {
            panic!("unknown metrics type {:?}", any.type_url);
        }
        s
    }
}

/// The fields of `io.containerd.cgroups.v1.Metrics` a client reads.
mod cg1 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metrics {
        #[prost(message, optional, tag = "2")]
        pub pids: Option<super::PidsStat>,
        #[prost(message, optional, tag = "3")]
        pub cpu: Option<CpuStat>,
        #[prost(message, optional, tag = "4")]
        pub memory: Option<MemoryStat>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuStat {
        #[prost(message, optional, tag = "1")]
        pub usage: Option<CpuUsage>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuUsage {
        #[prost(uint64, tag = "1")]
        pub total: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryStat {
        #[prost(message, optional, tag = "33")]
        pub usage: Option<MemoryEntry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryEntry {
        #[prost(uint64, tag = "1")]
        pub limit: u64,
        #[prost(uint64, tag = "2")]
        pub usage: u64,
    }
}

/// The fields of `io.containerd.cgroups.v2.Metrics` a client reads.
mod cg2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metrics {
        #[prost(message, optional, tag = "1")]
        pub pids: Option<super::PidsStat>,
        #[prost(message, optional, tag = "2")]
        pub cpu: Option<CpuStat>,
        #[prost(message, optional, tag = "4")]
        pub memory: Option<MemoryStat>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuStat {
        #[prost(uint64, tag = "1")]
        pub usage_usec: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryStat {
        #[prost(uint64, tag = "32")]
        pub usage: u64,
        #[prost(uint64, tag = "33")]
        pub usage_limit: u64,
    }
}

/// `PidsStat` (the same in cgroups v1 and v2 metrics).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PidsStat {
    /// Processes now.
    #[prost(uint64, tag = "1")]
    pub current: u64,
    /// The pids limit.
    #[prost(uint64, tag = "2")]
    pub limit: u64,
}

/// `containerd.runc.v1.ProcessDetails`, the `info` of a `ListPids` entry:
/// which exec a pid is (Docker's `Summary` shows it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDetails {
    /// The exec id, or "" for a process that is no exec.
    #[prost(string, tag = "1")]
    pub exec_id: String,
}

impl ProcessDetails {
    /// The exec id a `ListPids` entry names, if any.
    pub fn of(p: &ProcessInfo) -> Option<String> {
        let info = p.info.as_ref()?;
        assert!(
            info.type_url.ends_with("ProcessDetails"),
            "ListPids info of type {:?}",
            info.type_url
        );
        Some(
            ProcessDetails::decode(info.value.as_slice())
                .unwrap()
                .exec_id,
        )
    }
}
