//! The server's logger: containerd's `log` FIFO in the bundle (what
//! containerd shows with `shim_debug`), plus the per-runtime `log_path` file
//! from the options, which gVisor users set to debug a pod.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    sync::{Mutex, OnceLock},
};

use containerd_shim::logger::FifoLogger;
use log::{LevelFilter, Log, Metadata, Record};

struct ShimLogger {
    fifo: Option<FifoLogger>,
    files: Mutex<Vec<(String, File)>>,
}

static LOGGER: OnceLock<ShimLogger> = OnceLock::new();

/// Installs the logger (server process only; `start` and `delete` print to
/// stderr, which containerd logs on failure).
pub fn init(debug: bool) {
    let fifo = match FifoLogger::new("", "") {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("cannot open the log fifo: {e}");
            None
        }
    };
    let logger = LOGGER.get_or_init(|| ShimLogger {
        fifo,
        files: Mutex::new(Vec::new()),
    });
    if log::set_logger(logger).is_ok() {
        let level = std::env::var("RUST_LOG")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(LevelFilter::Info);
        log::set_max_level(if debug {
            level.max(LevelFilter::Debug)
        } else {
            level
        });
    }
}

/// Raises (never lowers) the level to what a container's options ask.
pub fn raise_level(level: &str) {
    if let Ok(l) = level.parse::<LevelFilter>() {
        if l > log::max_level() {
            log::set_max_level(l);
        }
    }
}

/// Also writes the log to `path` (appending); once per path.
pub fn add_file(path: &Path) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let key = path.to_string_lossy().into_owned();
    let mut files = logger.files.lock().unwrap_or_else(|p| p.into_inner());
    if files.iter().any(|(k, _)| *k == key) {
        return;
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => files.push((key, f)),
        Err(e) => log::warn!("cannot open shim log {key}: {e}"),
    }
}

impl Log for ShimLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(f) = &self.fifo {
            f.log(record);
        }
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.is_empty() {
            return;
        }
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = format!(
            "time=\"{ts}\" level={} msg=\"{}\"\n",
            record.level().as_str().to_lowercase(),
            record.args()
        );
        for (_, f) in files.iter_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Some(f) = &self.fifo {
            f.flush();
        }
    }
}
