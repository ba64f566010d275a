//! Benchmark bookkeeping for `make bench`: settings, samples, medians and
//! memory readings; [`procs`] reads the process table, [`scenarios`] runs
//! the non-timing scenarios and [`report`] prints the results (markdown and
//! JSON).

pub mod procs;
pub mod report;
pub mod scenarios;

pub use report::Report;

/// Command-line settings.
#[derive(Debug, Default)]
pub struct Config {
    /// Measured iterations per scenario.
    pub iterations: usize,
    /// Unmeasured warm-up iterations.
    pub warmup: usize,
    /// Where the shim binary is.
    pub shim_dir: Option<std::path::PathBuf>,
    /// JSON output file.
    pub out: Option<std::path::PathBuf>,
    /// A directory put first on `PATH` so its `runsc` is the one every
    /// configuration runs.
    pub runsc_dir: Option<std::path::PathBuf>,
    /// Metrics calls timed per shim (1000; 100 in a 1-iteration run).
    pub metrics_calls: usize,
    /// The longest wait for idle CPUs before a timed scenario (60 s; none
    /// in a 1-iteration run, which only keeps the harness from rotting).
    pub settle_max: std::time::Duration,
}

impl Config {
    /// Parses `--iterations N --warmup N --shim-dir D --out F --runsc-dir D
    /// --metrics-calls N`.
    pub fn from_args() -> Config {
        let mut c = Config {
            iterations: 20,
            warmup: 2,
            ..Default::default()
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let v = args.get(i + 1).cloned().unwrap_or_default();
            match args[i].as_str() {
                "--iterations" => c.iterations = v.parse().unwrap_or(20).max(1),
                "--warmup" => c.warmup = v.parse().unwrap_or(2),
                "--shim-dir" => c.shim_dir = Some(v.into()),
                "--out" => c.out = Some(v.into()),
                "--runsc-dir" => c.runsc_dir = Some(v.into()),
                "--metrics-calls" => c.metrics_calls = v.parse().unwrap_or(1000).max(1),
                other => eprintln!("bench: ignoring unknown argument {other}"),
            }
            i += 2;
        }
        c.settle_max = settle_max(c.iterations);
        if c.iterations == 1 {
            c.warmup = 0;
        }
        if c.metrics_calls == 0 {
            c.metrics_calls = if c.iterations == 1 { 100 } else { 1000 };
        }
        c
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Wall time in milliseconds.
    pub ms: f64,
    /// Whether the run succeeded.
    pub ok: bool,
}

/// Median, min and max of the successful samples, and the failure count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Median (ms).
    pub median: f64,
    /// Minimum (ms).
    pub min: f64,
    /// Maximum (ms).
    pub max: f64,
    /// Failed runs.
    pub failures: usize,
}

impl Stats {
    /// Summarises samples.
    pub fn of(samples: &[Sample]) -> Stats {
        let mut v: Vec<f64> = samples.iter().filter(|s| s.ok).map(|s| s.ms).collect();
        let failures = samples.len() - v.len();
        if v.is_empty() {
            return Stats {
                failures,
                ..Default::default()
            };
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Stats {
            median,
            min: v[0],
            max: v[v.len() - 1],
            failures,
        }
    }
}

/// Order of the three configurations in iteration `i`: all six orders in
/// turn. Each run leaves work behind (its sandbox tearing the process
/// down, a runsc process exiting); rotating one order would have each
/// configuration always follow the same other one and pay for its leftovers.
pub fn rotation(i: usize) -> [usize; 3] {
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [2, 1, 0],
        [1, 0, 2],
    ];
    ORDERS[i % ORDERS.len()]
}

/// 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// The longest wait for idle CPUs before a timed scenario: none for a
/// 1-iteration (smoke) run, whose figures nobody reads as measurements (in
/// CI the vm tier keeps a core busy, so it would wait the whole bound).
pub fn settle_max(iterations: usize) -> std::time::Duration {
    if iterations == 1 {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::from_secs(60)
    }
}

/// Waits, up to `max`, until the CPUs have been at least 90% idle for a
/// whole second, so a timed scenario does not pay for work the one before
/// left running (containerd's snapshot removal, a shim's background
/// `runsc delete`, the previous runsc version's run). Returns the wait in
/// seconds.
pub fn settle(max: std::time::Duration) -> f64 {
    let start = std::time::Instant::now();
    let mut prev = cpu_jiffies();
    while start.elapsed() < max {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = cpu_jiffies();
        if let (Some((idle0, total0)), Some((idle1, total1))) = (prev, now) {
            let total = total1.saturating_sub(total0);
            if total > 0 && idle1.saturating_sub(idle0) * 10 >= total * 9 {
                break;
            }
        }
        prev = now;
    }
    start.elapsed().as_secs_f64()
}

/// (idle + iowait, all) jiffies summed over the CPUs, from /proc/stat.
fn cpu_jiffies() -> Option<(u64, u64)> {
    idle_and_all(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn idle_and_all(stat: &str) -> Option<(u64, u64)> {
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    let all = fields.iter().take(8).sum();
    Some((fields.get(3)? + fields.get(4).copied().unwrap_or(0), all))
}

/// Memory of one shim process (kB).
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    /// Process id.
    pub pid: i32,
    /// VmRSS.
    pub rss: u64,
    /// RssAnon.
    pub anon: u64,
    /// Pss from smaps_rollup.
    pub pss: u64,
}

impl Mem {
    /// Reads `/proc/<pid>/status` and `smaps_rollup`.
    pub fn of(pid: i32) -> Option<Mem> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let field = |text: &str, key: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(Mem {
            pid,
            rss: field(&status, "VmRSS:"),
            anon: field(&status, "RssAnon:"),
            pss: field(&rollup, "Pss:"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_successes() {
        let s = |ms, ok| Sample { ms, ok };
        let st = Stats::of(&[s(3.0, true), s(1.0, true), s(100.0, false), s(2.0, true)]);
        assert_eq!((st.median, st.min, st.max, st.failures), (2.0, 1.0, 3.0, 1));
    }

    #[test]
    fn idle_counts_iowait_and_all_skips_guest() {
        let stat = "cpu  100 5 50 800 20 1 2 3 40 0\ncpu0 50 2 25 400 10 0 1 1 20 0\n";
        assert_eq!(idle_and_all(stat), Some((820, 981)));
        assert_eq!(idle_and_all("cpu  1 2\n"), None);
        assert_eq!(idle_and_all(""), None);
    }

    #[test]
    fn rotation_covers_all() {
        for i in 0..6 {
            let mut r = rotation(i);
            r.sort_unstable();
            assert_eq!(r, [0, 1, 2]);
        }
    }

    #[test]
    fn each_configuration_follows_each_other_as_often() {
        // Within iterations, over one cycle of six.
        let mut follows = [[0; 3]; 3];
        for i in 0..6 {
            let r = rotation(i);
            for w in r.windows(2) {
                follows[w[1]][w[0]] += 1;
            }
        }
        for (k, row) in follows.iter().enumerate() {
            for (j, &n) in row.iter().enumerate() {
                assert_eq!(n, if j == k { 0 } else { 2 }, "{follows:?}");
            }
        }
    }
}
