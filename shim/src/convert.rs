//! Protobuf <-> domain conversions: timestamps, task status, metrics.

use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::protos::{
    cgroups::metrics as v1,
    cgroups_v2::metrics as v2,
    protobuf::well_known_types::{any::Any, timestamp::Timestamp},
};

use crate::cgroup::{keyed, HostCgroup, Mode};

/// The current time as a protobuf timestamp.
pub fn now() -> Timestamp {
    timestamp(SystemTime::now())
}

/// A system time as a protobuf timestamp.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    ts
}

/// Packs a message into an `Any` with containerd's type URL. Through the
/// typed `Message` encoder: rust-protobuf's `MessageDyn` one asks for the
/// message's descriptor, which builds (and keeps for the shim's life) the
/// reflection tables of its proto file and every import, gogo's copy of
/// descriptor.proto among them, some hundreds of kB of heap.
pub fn to_any<M: containerd_shim::protos::protobuf::Message>(type_url: &str, m: &M) -> Any {
    let mut a = Any::new();
    a.type_url = type_url.to_string();
    a.value = m.write_to_bytes().unwrap_or_default();
    a
}

/// Whose figures a container's Stats carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The sandbox's own container: the whole sandbox (its host cgroup).
    Sandbox,
    /// A pod member: only what runsc accounts per container (its CPU
    /// share). Memory and pids are the sandbox's alone, reported once by the
    /// sandbox container, so a pod's sum never counts them once per member.
    Member,
}

/// Metrics for Stats: runsc's per-container view where it has one (CPU
/// share, pids) plus the sandbox's host cgroup, in the type containerd
/// expects for the host's cgroup mode.
pub fn metrics(stats: Option<&runsc::Stats>, cg: Option<&HostCgroup>, scope: Scope) -> Any {
    let mode = cg.map(HostCgroup::mode).unwrap_or_else(crate::cgroup::mode);
    let cpu_only;
    let (stats, cg) = match scope {
        Scope::Sandbox => (stats, cg),
        Scope::Member => {
            cpu_only = stats.map(|s| runsc::Stats {
                cpu: s.cpu.clone(),
                ..Default::default()
            });
            (cpu_only.as_ref(), None)
        }
    };
    match mode {
        Mode::V1 => to_any("io.containerd.cgroups.v1.Metrics", &metrics_v1(stats, cg)),
        Mode::V2 => to_any("io.containerd.cgroups.v2.Metrics", &metrics_v2(stats, cg)),
    }
}

fn metrics_v1(stats: Option<&runsc::Stats>, cg: Option<&HostCgroup>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    let mut cpu = v1::CPUStat::new();
    let mut usage = v1::CPUUsage::new();
    let mut mem = v1::MemoryStat::new();
    let mut pids = v1::PidsStat::new();
    if let Some(cg) = cg {
        if let Some(acct) = cg.cpuacct() {
            let acct = acct.cpuacct();
            usage.total = acct.usage;
            usage.per_cpu = acct
                .usage_percpu
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            let st = keyed(&acct.stat);
            // USER_HZ ticks to nanoseconds.
            usage.user = st.get("user").copied().unwrap_or(0) * 10_000_000;
            usage.kernel = st.get("system").copied().unwrap_or(0) * 10_000_000;
        }
        if let Some(c) = cg.cpu() {
            let th = keyed(&c.cpu().stat);
            let mut t = v1::Throttle::new();
            t.periods = th.get("nr_periods").copied().unwrap_or(0);
            t.throttled_periods = th.get("nr_throttled").copied().unwrap_or(0);
            t.throttled_time = th.get("throttled_time").copied().unwrap_or(0);
            cpu.throttling = Some(t).into();
        }
        if let Some(mc) = cg.memory() {
            let m = mc.memory_stat();
            let s = &m.stat;
            mem.cache = s.cache;
            mem.rss = s.rss;
            mem.rss_huge = s.rss_huge;
            mem.mapped_file = s.mapped_file;
            mem.dirty = s.dirty;
            mem.writeback = s.writeback;
            mem.pg_fault = s.pgfault;
            mem.pg_maj_fault = s.pgmajfault;
            mem.inactive_anon = s.inactive_anon;
            mem.active_anon = s.active_anon;
            mem.inactive_file = s.inactive_file;
            mem.active_file = s.active_file;
            mem.unevictable = s.unevictable;
            mem.total_cache = s.total_cache;
            mem.total_rss = s.total_rss;
            mem.total_inactive_file = s.total_inactive_file;
            let entry = |usage, limit: i64, max, failcnt| {
                let mut e = v1::MemoryEntry::new();
                e.usage = usage;
                e.limit = u64::try_from(limit).unwrap_or(u64::MAX);
                e.max = max;
                e.failcnt = failcnt;
                e
            };
            let (sw, k, tcp) = (mc.memswap(), mc.kmem_stat(), mc.kmem_tcp_stat());
            mem.usage = Some(entry(
                m.usage_in_bytes,
                m.limit_in_bytes,
                m.max_usage_in_bytes,
                m.fail_cnt,
            ))
            .into();
            mem.swap = Some(entry(
                sw.usage_in_bytes,
                sw.limit_in_bytes,
                sw.max_usage_in_bytes,
                sw.fail_cnt,
            ))
            .into();
            mem.kernel = Some(entry(
                k.usage_in_bytes,
                k.limit_in_bytes,
                k.max_usage_in_bytes,
                k.fail_cnt,
            ))
            .into();
            mem.kernel_tcp = Some(entry(
                tcp.usage_in_bytes,
                tcp.limit_in_bytes,
                tcp.max_usage_in_bytes,
                tcp.fail_cnt,
            ))
            .into();
        }
        (pids.current, pids.limit) = cg.pids();
    }
    if let Some(s) = stats {
        if s.cpu.usage.total > 0 {
            usage.total = s.cpu.usage.total;
        }
        if s.pids.current > 0 {
            pids.current = s.pids.current;
        }
        if cg.is_none() {
            let mut e = v1::MemoryEntry::new();
            e.usage = s.memory.usage.usage;
            e.limit = s.memory.usage.limit;
            mem.usage = Some(e).into();
        }
    }
    cpu.usage = Some(usage).into();
    m.cpu = Some(cpu).into();
    m.memory = Some(mem).into();
    m.pids = Some(pids).into();
    m
}

fn metrics_v2(stats: Option<&runsc::Stats>, cg: Option<&HostCgroup>) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut cpu = v2::CPUStat::new();
    let mut mem = v2::MemoryStat::new();
    let mut pids = v2::PidsStat::new();
    if let Some(cg) = cg {
        if let Some(c) = cg.cpu() {
            let st = keyed(&c.cpu().stat);
            let g = |k: &str| st.get(k).copied().unwrap_or(0);
            cpu.usage_usec = g("usage_usec");
            cpu.user_usec = g("user_usec");
            cpu.system_usec = g("system_usec");
            cpu.nr_periods = g("nr_periods");
            cpu.nr_throttled = g("nr_throttled");
            cpu.throttled_usec = g("throttled_usec");
        }
        if let Some(mc) = cg.memory() {
            let m = mc.memory_stat();
            let g = |k: &str| m.stat.raw.get(k).copied().unwrap_or(0);
            mem.anon = g("anon");
            mem.file = g("file");
            mem.slab = g("slab");
            mem.sock = g("sock");
            mem.shmem = g("shmem");
            // "max" reads as -1: unlimited is u64::MAX, as containerd's Go shim reports.
            let limit = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
            mem.usage = m.usage_in_bytes;
            mem.usage_limit = limit(m.limit_in_bytes);
            let sw = mc.memswap();
            mem.swap_usage = sw.usage_in_bytes;
            mem.swap_limit = limit(sw.limit_in_bytes);
        }
        (pids.current, pids.limit) = cg.pids();
    }
    if let Some(s) = stats {
        if s.cpu.usage.total > 0 {
            cpu.usage_usec = s.cpu.usage.total / 1000;
        }
        if s.pids.current > 0 {
            pids.current = s.pids.current;
        }
        if cg.is_none() {
            mem.usage = s.memory.usage.usage;
        }
    }
    m.cpu = Some(cpu).into();
    m.memory = Some(mem).into();
    m.pids = Some(pids).into();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_seconds_and_nanos() {
        let t = UNIX_EPOCH + std::time::Duration::new(5, 7);
        let ts = timestamp(t);
        assert_eq!((ts.seconds, ts.nanos), (5, 7));
    }

    #[test]
    fn a_member_never_carries_the_sandboxs_memory_or_pids() {
        use containerd_shim::protos::protobuf::Message;
        let mut stats = runsc::Stats::default();
        stats.cpu.usage.total = 5_000;
        stats.memory.usage.usage = 100 << 20;
        stats.pids.current = 9;
        let member = metrics(Some(&stats), None, Scope::Member);
        let sandbox = metrics(Some(&stats), None, Scope::Sandbox);
        match crate::cgroup::mode() {
            Mode::V1 => {
                let m = v1::Metrics::parse_from_bytes(&member.value).unwrap();
                assert_eq!(m.cpu.usage.total, 5_000);
                assert_eq!(m.memory.usage.usage, 0);
                assert_eq!(m.pids.current, 0);
                let s = v1::Metrics::parse_from_bytes(&sandbox.value).unwrap();
                assert_eq!((s.memory.usage.usage, s.pids.current), (100 << 20, 9));
            }
            Mode::V2 => {
                let m = v2::Metrics::parse_from_bytes(&member.value).unwrap();
                assert_eq!(m.cpu.usage_usec, 5);
                assert_eq!((m.memory.usage, m.pids.current), (0, 0));
                let s = v2::Metrics::parse_from_bytes(&sandbox.value).unwrap();
                assert_eq!((s.memory.usage, s.pids.current), (100 << 20, 9));
            }
        }
    }

    #[test]
    fn metrics_type_follows_host_mode() {
        let a = metrics(None, None, Scope::Sandbox);
        let want = match crate::cgroup::mode() {
            Mode::V1 => "io.containerd.cgroups.v1.Metrics",
            Mode::V2 => "io.containerd.cgroups.v2.Metrics",
        };
        assert_eq!(a.type_url, want);
    }
}
