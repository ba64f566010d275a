//! Limits on a sandbox whose cgroup is a systemd unit (runsc's systemd
//! cgroup driver, the kubelet's default on cgroup v2 nodes). They are set
//! as unit properties over D-Bus, as runc does: systemd owns the unit's
//! cgroup files and rewrites them from its own view at every
//! `daemon-reload` or `set-property`, so a file written behind its back is
//! lost. The D-Bus client is `cgroups-rs`'s; which properties a
//! `LinuxResources` becomes is here (runc's conversions).

use cgroups_rs::systemd::{
    Property, SystemdClient, CPU_QUOTA_PERIOD_US, CPU_QUOTA_PER_SEC_US, CPU_SHARES, CPU_WEIGHT,
    MEMORY_LIMIT, MEMORY_LOW, MEMORY_MAX, MEMORY_SWAP_MAX, TASKS_MAX,
};
use oci_spec::runtime::LinuxResources;
use zbus::zvariant::Value;

use super::{shares_to_weight, Mode};
use crate::error::{Error, Result};

/// systemd's "no limit" for a numeric property.
const INFINITY: u64 = u64::MAX;

/// The kernel's default CFS period, in microseconds.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// The unit systemd made for a cgroup, if it is one: the last element of a
/// cgroup path when it is a scope (`cri-containerd-<id>.scope`, as runsc's
/// systemd driver makes them).
pub fn unit_of_cgroup(rel: &str) -> Option<&str> {
    rel.rsplit('/')
        .next()
        .filter(|u| u.ends_with(".scope") && u.len() > ".scope".len())
}

/// The unit properties `r` asks for. What a property cannot say (cpusets,
/// a v1 swap or reservation) is left out, as `runsc`'s own systemd driver
/// does.
pub fn properties(r: &LinuxResources, mode: Mode) -> Vec<Property<'static>> {
    let v2 = mode == Mode::V2;
    let mut props: Vec<Property<'static>> = Vec::new();
    let mut push = |name: &'static str, v: u64| props.push((name, Value::U64(v)));
    if let Some(m) = r.memory() {
        let limit = m.limit();
        if let Some(l) = limit.filter(|l| *l != 0) {
            push(if v2 { MEMORY_MAX } else { MEMORY_LIMIT }, limit_value(l));
        }
        if v2 {
            if let Some(res) = m.reservation().filter(|r| *r != 0) {
                push(MEMORY_LOW, limit_value(res));
            }
            // OCI swap is memory+swap; systemd's MemorySwapMax is swap alone.
            if let Some(s) = m.swap().filter(|s| *s != 0) {
                let swap = match limit {
                    _ if s < 0 => INFINITY,
                    Some(l) if l > 0 => u64::try_from(s - l).unwrap_or(0),
                    _ => limit_value(s),
                };
                push(MEMORY_SWAP_MAX, swap);
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            if v2 {
                push(CPU_WEIGHT, shares_to_weight(s));
            } else {
                push(CPU_SHARES, s);
            }
        }
        let period = c.period().unwrap_or(0);
        if period != 0 {
            push(CPU_QUOTA_PERIOD_US, period);
        }
        let quota = c.quota().unwrap_or(0);
        if period != 0 || quota != 0 {
            push(CPU_QUOTA_PER_SEC_US, quota_per_sec(quota, period));
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        if l != 0 {
            push(TASKS_MAX, limit_value(l));
        }
    }
    props
}

/// A limit in bytes or tasks; negative means none.
fn limit_value(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(INFINITY)
}

/// CPU time per second of wall time for a CFS quota and period, rounded up
/// to a whole 10 ms: systemd keeps the property as a percentage, and a
/// smaller value would give the unit less than the quota asked for.
fn quota_per_sec(quota: i64, period: u64) -> u64 {
    let Ok(quota) = u64::try_from(quota) else {
        return INFINITY;
    };
    if quota == 0 {
        return INFINITY;
    }
    let period = if period == 0 {
        DEFAULT_PERIOD_US
    } else {
        period
    };
    let per_sec = quota.saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// Sets `r` on `unit` through systemd. Blocking (D-Bus).
pub fn set(unit: &str, r: &LinuxResources, mode: Mode) -> Result<()> {
    let props = properties(r, mode);
    if props.is_empty() {
        return Ok(());
    }
    let what = || format!("set the limits of systemd unit {unit}");
    let mut client = SystemdClient::new(unit, Vec::new())
        .map_err(|e| Error::Other(format!("{}: {e}", what())))?;
    // The client sets nothing on a unit that does not exist: say so.
    if !client.exists() {
        return Err(Error::FailedPrecondition(format!(
            "{}: systemd has no such unit",
            what()
        )));
    }
    client
        .set_properties(&props)
        .map_err(|e| Error::Other(format!("{}: {e}", what())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    fn props(r: &LinuxResources, mode: Mode) -> Vec<(&'static str, u64)> {
        properties(r, mode)
            .into_iter()
            .map(|(k, v)| match v {
                Value::U64(n) => (k, n),
                other => panic!("{k}: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn resources_become_runcs_unit_properties() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(256i64 << 20)
                    .swap(512i64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1i64).build().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            props(&r, Mode::V2),
            vec![
                (MEMORY_MAX, 256 << 20),
                (MEMORY_SWAP_MAX, 256 << 20),
                (CPU_WEIGHT, 39),
                (CPU_QUOTA_PERIOD_US, 100_000),
                (CPU_QUOTA_PER_SEC_US, 500_000),
                (TASKS_MAX, INFINITY),
            ]
        );
        assert_eq!(
            props(&r, Mode::V1),
            vec![
                (MEMORY_LIMIT, 256 << 20),
                (CPU_SHARES, 1024),
                (CPU_QUOTA_PERIOD_US, 100_000),
                (CPU_QUOTA_PER_SEC_US, 500_000),
                (TASKS_MAX, INFINITY),
            ]
        );
    }

    #[test]
    fn a_quota_rounds_up_to_whole_percent_and_none_is_infinity() {
        assert_eq!(quota_per_sec(33_333, 100_000), 340_000);
        assert_eq!(quota_per_sec(50_000, 0), 500_000);
        assert_eq!(quota_per_sec(-1, 100_000), INFINITY);
        assert_eq!(quota_per_sec(0, 100_000), INFINITY);
    }

    // Seen while writing the update_resources fuzz target: rounding a quota
    // near u64::MAX up overflowed (a panic in a debug build, a tiny limit
    // after wrapping in a release one).
    #[test]
    fn a_huge_quota_saturates_instead_of_wrapping() {
        assert_eq!(quota_per_sec(i64::MAX, 1), INFINITY);
    }

    #[test]
    fn only_scopes_are_units() {
        assert_eq!(
            unit_of_cgroup("/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope"),
            Some("cri-containerd-ab.scope")
        );
        assert_eq!(unit_of_cgroup("/default/ab"), None);
        assert_eq!(unit_of_cgroup("/.scope"), None);
    }
}
