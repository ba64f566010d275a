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

/// Whose figures a container's Stats carry. runsc counts CPU and pids per
/// container, but memory only for the whole sandbox (0.0~20221219 gives
/// every container the sandbox's figure; later releases split it), and
/// the host cgroup is the sandbox's. So the sandbox's memory is attributed
/// the way gVisor's own `runsc events` does since 2024, from the host
/// cgroup, the same on every runsc: in a pod, each running member gets an
/// equal share and the sandbox (pause) container none, so a pod's
/// containers add up to the pod's figure, never more, and no running
/// member shows 0 (the kubelet reads members only; the pod's own figure is
/// its cgroup's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A sandbox's own container with no running member: the whole sandbox.
    Sandbox,
    /// A sandbox's own container while members run: its own CPU and pids,
    /// no memory.
    PodSandbox,
    /// A pod member, one of `members` running: its own CPU and pids, and
    /// its share of the sandbox's memory.
    Member {
        /// How many members of the sandbox run (this one included).
        members: u64,
    },
}

/// Metrics for Stats: runsc's per-container view where it has one (CPU
/// share, pids) plus the sandbox's host cgroup, in the type containerd
/// expects for the host's cgroup mode.
pub fn metrics(stats: Option<&runsc::Stats>, cg: Option<&HostCgroup>, scope: Scope) -> Any {
    let mode = cg.map(HostCgroup::mode).unwrap_or_else(crate::cgroup::mode);
    let own = stats.map(|s| runsc::Stats {
        cpu: s.cpu.clone(),
        pids: s.pids.clone(),
        ..Default::default()
    });
    match (mode, scope) {
        (Mode::V1, Scope::Sandbox) => to_any(V1, &metrics_v1(stats, cg)),
        (Mode::V2, Scope::Sandbox) => to_any(V2, &metrics_v2(stats, cg)),
        (Mode::V1, Scope::PodSandbox) => to_any(V1, &metrics_v1(own.as_ref(), None)),
        (Mode::V2, Scope::PodSandbox) => to_any(V2, &metrics_v2(own.as_ref(), None)),
        (Mode::V1, Scope::Member { members }) => {
            let mut m = metrics_v1(own.as_ref(), None);
            if let Some(cg) = cg {
                m.memory = Some(share_v1(
                    metrics_v1(None, Some(cg)).memory.unwrap_or_default(),
                    members,
                ))
                .into();
            }
            to_any(V1, &m)
        }
        (Mode::V2, Scope::Member { members }) => {
            let mut m = metrics_v2(own.as_ref(), None);
            if let Some(cg) = cg {
                m.memory = Some(share_v2(
                    metrics_v2(None, Some(cg)).memory.unwrap_or_default(),
                    members,
                ))
                .into();
            }
            to_any(V2, &m)
        }
    }
}

const V1: &str = "io.containerd.cgroups.v1.Metrics";
const V2: &str = "io.containerd.cgroups.v2.Metrics";

/// One of `n` equal shares of a v1 memory figure (limits stay whole).
fn share_v1(mut m: v1::MemoryStat, n: u64) -> v1::MemoryStat {
    let n = n.max(1);
    for f in [
        &mut m.cache,
        &mut m.rss,
        &mut m.rss_huge,
        &mut m.mapped_file,
        &mut m.dirty,
        &mut m.writeback,
        &mut m.inactive_anon,
        &mut m.active_anon,
        &mut m.inactive_file,
        &mut m.active_file,
        &mut m.unevictable,
        &mut m.total_cache,
        &mut m.total_rss,
        &mut m.total_inactive_file,
    ] {
        *f /= n;
    }
    for e in [&mut m.usage, &mut m.swap, &mut m.kernel, &mut m.kernel_tcp] {
        if let Some(e) = e.as_mut() {
            e.usage /= n;
            e.max /= n;
        }
    }
    m
}

/// One of `n` equal shares of a v2 memory figure (limits stay whole).
fn share_v2(mut m: v2::MemoryStat, n: u64) -> v2::MemoryStat {
    let n = n.max(1);
    for f in [
        &mut m.usage,
        &mut m.anon,
        &mut m.file,
        &mut m.slab,
        &mut m.sock,
        &mut m.shmem,
        &mut m.file_mapped,
        &mut m.inactive_anon,
        &mut m.active_anon,
        &mut m.inactive_file,
        &mut m.active_file,
        &mut m.swap_usage,
    ] {
        *f /= n;
    }
    m
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
            mem.file_mapped = g("file_mapped");
            // The kubelet's working set is usage less inactive_file.
            mem.inactive_anon = g("inactive_anon");
            mem.active_anon = g("active_anon");
            mem.inactive_file = g("inactive_file");
            mem.active_file = g("active_file");
            mem.pgfault = g("pgfault");
            mem.pgmajfault = g("pgmajfault");
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
    fn members_share_the_sandboxs_memory_and_the_pause_container_has_none() {
        use containerd_shim::protos::protobuf::Message;
        let mut stats = runsc::Stats::default();
        stats.cpu.usage.total = 5_000;
        stats.memory.usage.usage = 100 << 20;
        stats.pids.current = 9;
        // This process's own cgroup stands in for a sandbox's.
        let cg = HostCgroup::for_pid(std::process::id()).unwrap();
        let member = metrics(Some(&stats), Some(&cg), Scope::Member { members: 2 });
        let alone = metrics(Some(&stats), None, Scope::Sandbox);
        let pause = metrics(Some(&stats), Some(&cg), Scope::PodSandbox);
        match crate::cgroup::mode() {
            Mode::V1 => {
                let m = v1::Metrics::parse_from_bytes(&member.value).unwrap();
                assert_eq!((m.cpu.usage.total, m.pids.current), (5_000, 9));
                assert!(m.memory.usage.usage > 0);
                let p = v1::Metrics::parse_from_bytes(&pause.value).unwrap();
                assert_eq!((p.memory.usage.usage, p.pids.current), (0, 9));
                let s = v1::Metrics::parse_from_bytes(&alone.value).unwrap();
                assert_eq!((s.memory.usage.usage, s.pids.current), (100 << 20, 9));
            }
            Mode::V2 => {
                let m = v2::Metrics::parse_from_bytes(&member.value).unwrap();
                assert_eq!((m.cpu.usage_usec, m.pids.current), (5, 9));
                assert!(m.memory.usage > 0);
                let p = v2::Metrics::parse_from_bytes(&pause.value).unwrap();
                assert_eq!((p.memory.usage, p.pids.current), (0, 9));
                let s = v2::Metrics::parse_from_bytes(&alone.value).unwrap();
                assert_eq!((s.memory.usage, s.pids.current), (100 << 20, 9));
            }
        }
    }

    #[test]
    fn a_share_divides_usage_and_keeps_the_limit() {
        let mut e = v1::MemoryEntry::new();
        (e.usage, e.limit, e.max) = (90, 1000, 99);
        let mut m = v1::MemoryStat::new();
        m.usage = Some(e).into();
        m.total_inactive_file = 30;
        let s = share_v1(m, 3);
        assert_eq!((s.usage.usage, s.usage.limit, s.usage.max), (30, 1000, 33));
        assert_eq!(s.total_inactive_file, 10);
        let mut m = v2::MemoryStat::new();
        (m.usage, m.usage_limit, m.inactive_file) = (90, 1000, 30);
        let s = share_v2(m, 3);
        assert_eq!((s.usage, s.usage_limit, s.inactive_file), (30, 1000, 10));
        assert_eq!(share_v2(v2::MemoryStat::new(), 0).usage, 0);
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
