//! The server's logger: containerd's `log` FIFO in the bundle (what
//! containerd shows with `shim_debug`), plus the per-runtime `log_path` file
//! from the options, which gVisor users set to debug a pod.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    sync::{
        mpsc::{sync_channel, SyncSender, TrySendError},
        Arc, Mutex, OnceLock,
    },
};

use log::{LevelFilter, Log, Metadata, Record};

/// Lines waiting for the writer thread; beyond that, lines are dropped
/// rather than stall a request.
const QUEUE: usize = 1024;

type Files = Arc<Mutex<Vec<(String, File)>>>;

/// Formats records on the calling thread and hands them to one writer
/// thread: containerd may read its log FIFO slowly (or not at all), and a
/// full FIFO must never block the shim's runtime thread.
struct ShimLogger {
    tx: SyncSender<String>,
    files: Files,
}

static LOGGER: OnceLock<ShimLogger> = OnceLock::new();

/// Installs the logger (server process only; `start` and `delete` print to
/// stderr, which containerd logs on failure).
pub fn init(debug: bool) {
    // containerd's log FIFO, in the bundle the server starts in.
    let fifo = match OpenOptions::new().write(true).open("log") {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("cannot open the log fifo: {e}");
            None
        }
    };
    let logger = LOGGER.get_or_init(|| {
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let files: Files = Arc::default();
        let out = files.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut fifo = fifo;
                for line in rx {
                    if let Some(f) = fifo.as_mut() {
                        // containerd gone: EPIPE (SIGPIPE is ignored by the shim).
                        let _ = f.write_all(line.as_bytes());
                    }
                    for (_, f) in out.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
                        let _ = f.write_all(line.as_bytes());
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("cannot start the log writer: {e}");
        }
        ShimLogger { tx, files }
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
    if logger
        .files
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(k, _)| *k == key)
    {
        return;
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => logger
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key, f)),
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
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        // containerd's logfmt, as its own shims write it.
        let line = format!(
            "time=\"{ts}\" level={} msg=\"{}\"\n",
            record.level().as_str().to_lowercase(),
            record.args()
        );
        // A full queue drops the line: logging never stalls a request.
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
        }
    }

    fn flush(&self) {}
}
