//! Benchmark bookkeeping for `make bench`: samples, medians, memory readings
//! and the report (markdown and JSON).

use std::collections::BTreeMap;

use serde_json::json;

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
}

impl Config {
    /// Parses `--iterations N --warmup N --shim-dir D --out F`.
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
                other => eprintln!("bench: ignoring unknown argument {other}"),
            }
            i += 2;
        }
        if c.iterations == 1 {
            c.warmup = 0;
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

/// Order of the three configurations in iteration `i` (rotated).
pub fn rotation(i: usize) -> [usize; 3] {
    [i % 3, (i + 1) % 3, (i + 2) % 3]
}

/// 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
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

/// Everything one run measured.
pub struct Report {
    /// Iterations per scenario.
    pub iterations: usize,
    /// Load before.
    pub load_before: f64,
    /// Load after.
    pub load_after: f64,
    /// Timed scenarios: [ours, Go shim, bare runsc].
    pub results: BTreeMap<&'static str, [Stats; 3]>,
    /// Shim memory, one container per shim: [ours, Go].
    pub mem_single: [Vec<Mem>; 2],
    /// Shim memory with a 5-container pod added: [ours, Go].
    pub mem_pod: [Vec<Mem>; 2],
    /// 20 concurrent starts: (wall ms, failures) per round, [ours, Go].
    pub concurrent: [Vec<(f64, usize)>; 2],
    /// runsc invocations of one `ctr run --rm /bin/true` through our shim.
    pub runsc_calls_per_lifecycle: usize,
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}

fn cell(s: &Stats) -> String {
    let f = if s.failures > 0 {
        format!(" ({} failed)", s.failures)
    } else {
        String::new()
    };
    format!("{:.1} ({:.1}-{:.1}){f}", s.median, s.min, s.max)
}

impl Report {
    /// The markdown table.
    pub fn markdown(&self) -> String {
        let mut o = format!(
            "## runsc-shim benchmark ({} iterations, load {:.2} -> {:.2})\n\n| scenario | ours | Go shim + runsc | bare runsc | ours/Go | ours/bare |\n|---|---|---|---|---|---|\n",
            self.iterations, self.load_before, self.load_after
        );
        for (name, [a, b, c]) in &self.results {
            o += &format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                cell(a),
                cell(b),
                cell(c),
                ratio(a.median, b.median),
                ratio(a.median, c.median)
            );
        }
        let conc: Vec<Stats> = self
            .concurrent
            .iter()
            .map(|v| {
                let s: Vec<Sample> = v
                    .iter()
                    .map(|(ms, f)| Sample {
                        ms: *ms,
                        ok: *f == 0,
                    })
                    .collect();
                Stats::of(&s)
            })
            .collect();
        if let [a, b] = conc.as_slice() {
            o += &format!(
                "| 20 concurrent ctr run --rm (ms) | {} | {} | - | {} | - |\n",
                cell(a),
                cell(b),
                ratio(a.median, b.median)
            );
        }
        let mem = |v: &Vec<Mem>| {
            let total: u64 = v.iter().map(|m| m.rss).sum();
            let mut rss: Vec<u64> = v.iter().map(|m| m.rss).collect();
            rss.sort_unstable();
            let med = rss.get(rss.len() / 2).copied().unwrap_or(0);
            let anon = v.iter().map(|m| m.anon).max().unwrap_or(0);
            let pss = v.iter().map(|m| m.pss).max().unwrap_or(0);
            (v.len(), med, anon, pss, total)
        };
        let (n0, m0, a0, p0, _) = mem(&self.mem_single[0]);
        let (n1, m1, a1, p1, _) = mem(&self.mem_single[1]);
        o += &format!(
            "| shim memory, 1 container (kB VmRSS median / RssAnon / Pss) | {m0} / {a0} / {p0} ({n0} shims) | {m1} / {a1} / {p1} ({n1} shims) | - | {} | - |\n",
            ratio(m0 as f64, m1 as f64)
        );
        let (n0, _, _, _, t0) = mem(&self.mem_pod[0]);
        let (n1, _, _, _, t1) = mem(&self.mem_pod[1]);
        o += &format!(
            "| shim memory, 1 container + a 5-container pod (Go: 6 containers) (kB VmRSS total) | {t0} ({n0} shims) | {t1} ({n1} shims) | - | {} | - |\n",
            ratio(t0 as f64, t1 as f64)
        );
        o += &format!("\nrunsc invocations per `ctr run --rm /bin/true` lifecycle through our shim (including containerd's `shim delete`): {}\n", self.runsc_calls_per_lifecycle);
        o
    }

    /// The JSON document.
    pub fn json(&self) -> String {
        let stats = |s: &Stats| json!({"median_ms": s.median, "min_ms": s.min, "max_ms": s.max, "failures": s.failures});
        let mems = |v: &Vec<Mem>| {
            v.iter().map(|m| json!({"pid": m.pid, "vmrss_kb": m.rss, "rss_anon_kb": m.anon, "pss_kb": m.pss})).collect::<Vec<_>>()
        };
        let results: serde_json::Map<String, serde_json::Value> = self
            .results
            .iter()
            .map(|(k, [a, b, c])| {
                (
                    k.to_string(),
                    json!({"ours": stats(a), "go_shim": stats(b), "bare_runsc": stats(c)}),
                )
            })
            .collect();
        let v = json!({
            "iterations": self.iterations,
            "loadavg_before": self.load_before,
            "loadavg_after": self.load_after,
            "results": results,
            "memory_single": {"ours": mems(&self.mem_single[0]), "go_shim": mems(&self.mem_single[1])},
            "memory_with_pod": {"ours": mems(&self.mem_pod[0]), "go_shim": mems(&self.mem_pod[1])},
            "concurrent_20": {"ours": self.concurrent[0], "go_shim": self.concurrent[1]},
            "runsc_calls_per_lifecycle": self.runsc_calls_per_lifecycle,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
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
    fn rotation_covers_all() {
        for i in 0..3 {
            let mut r = rotation(i);
            r.sort_unstable();
            assert_eq!(r, [0, 1, 2]);
        }
    }
}
