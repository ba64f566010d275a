//! Runtime options as gVisor users write them: `CreateTaskRequest.options`
//! carries `runtimeoptions.v1.Options{type_url, config_path}` pointing at a
//! TOML file (`binary_name`, `root`, `log_path`, `log_level`, `io_uid`,
//! `io_gid`, `shim_cgroup`, `[runsc_config]`). Port of gVisor's
//! `pkg/shim/v1/runsc/options.go`.

use std::{collections::BTreeMap, path::Path};

use containerd_shim::protos::protobuf::{well_known_types::any::Any, CodedInputStream, Message};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default runsc state root; runsc gets `<root>/<namespace>`.
pub const DEFAULT_ROOT: &str = "/run/containerd/runsc";
/// Default runsc binary, looked up on PATH.
pub const DEFAULT_BINARY: &str = "runsc";

/// The options a container runs with, persisted in the bundle for `delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// runsc binary name or path.
    pub binary_name: String,
    /// runsc root base directory.
    pub root: String,
    /// Extra shim log file (`%ID%` substituted, trailing `/` = directory).
    pub log_path: String,
    /// Shim log level (`debug`, `info`, ...).
    pub log_level: String,
    /// Owner of the stdio pipes the shim creates.
    pub io_uid: u32,
    /// Group of the stdio pipes the shim creates.
    pub io_gid: u32,
    /// Cgroup the shim process moves itself into.
    pub shim_cgroup: String,
    /// Accepted for compatibility with gVisor's global config; one shim per
    /// pod is always on here.
    pub grouping: bool,
    /// Accepted for compatibility; gVisor's hibernate server is not offered.
    pub enable_hibernate_server: bool,
    /// Flags given to every runsc call as `--key=value`.
    pub runsc_config: BTreeMap<String, String>,
    /// Deadline overrides per runsc verb, in milliseconds (0: none); see
    /// [`runsc::Timeouts`] for the verbs and defaults.
    pub runsc_timeouts: BTreeMap<String, u64>,
    /// Calls on a running sandbox over its control socket (`direct`, the
    /// default, falling back to the CLI for unknown runsc releases) or
    /// always through the runsc CLI (`cli`).
    pub sandbox_control: runsc::SandboxControl,
    /// The task API offered to containerd (`auto`: the highest it takes).
    pub task_api: TaskApiChoice,
}

/// Which task API `start` offers containerd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskApiChoice {
    /// v3 to containerd 2.3 and later, v2 to older ones.
    #[default]
    Auto,
    /// v2 only: containerd then runs `start` and `delete` for every
    /// container of a pod, as before 2.3.
    V2,
}

/// Global runsc flags the shim sets itself; a `[runsc_config]` entry for
/// one of them would break how the shim reads runsc's errors or state.
pub const SHIM_OWNED_FLAGS: &[&str] = &["root", "log", "log-format"];

impl Default for Options {
    fn default() -> Self {
        Options {
            binary_name: DEFAULT_BINARY.into(),
            root: DEFAULT_ROOT.into(),
            log_path: String::new(),
            log_level: String::new(),
            io_uid: 0,
            io_gid: 0,
            shim_cgroup: String::new(),
            grouping: false,
            enable_hibernate_server: false,
            runsc_config: BTreeMap::new(),
            runsc_timeouts: BTreeMap::new(),
            sandbox_control: runsc::SandboxControl::default(),
            task_api: TaskApiChoice::Auto,
        }
    }
}

/// TOML allows `debug = true`; runsc wants strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum FlagValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TomlOptions {
    binary_name: String,
    root: String,
    log_path: String,
    log_level: String,
    io_uid: u32,
    io_gid: u32,
    shim_cgroup: String,
    grouping: bool,
    enable_hibernate_server: bool,
    runsc_config: BTreeMap<String, FlagValue>,
    runsc_timeouts: BTreeMap<String, f64>,
    sandbox_control: runsc::SandboxControl,
    task_api: TaskApiChoice,
}

impl Default for TomlOptions {
    fn default() -> Self {
        let d = Options::default();
        TomlOptions {
            binary_name: d.binary_name,
            root: d.root,
            log_path: d.log_path,
            log_level: d.log_level,
            io_uid: 0,
            io_gid: 0,
            shim_cgroup: d.shim_cgroup,
            grouping: false,
            enable_hibernate_server: false,
            runsc_config: BTreeMap::new(),
            runsc_timeouts: BTreeMap::new(),
            sandbox_control: d.sandbox_control,
            task_api: d.task_api,
        }
    }
}

impl Options {
    /// Parses a runsc TOML config file's text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Options> {
        let t: TomlOptions = toml::from_str(text).map_err(|e| {
            Error::InvalidArgument(format!("invalid runsc options in {source}: {e}"))
        })?;
        let mut runsc_config = BTreeMap::new();
        for (k, v) in t.runsc_config {
            if k.is_empty()
                || k.starts_with('-')
                || k.contains('=')
                || k.contains(char::is_whitespace)
            {
                return Err(Error::InvalidArgument(format!(
                    "invalid runsc options in {source}: runsc_config key {k:?} is not a flag name"
                )));
            }
            if SHIM_OWNED_FLAGS.contains(&k.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "invalid runsc options in {source}: runsc_config key {k:?} is set by the shim itself (root = \"...\" at the top level sets runsc's root)"
                )));
            }
            let v = match v {
                FlagValue::Str(s) => s,
                FlagValue::Bool(b) => b.to_string(),
                FlagValue::Int(i) => i.to_string(),
                FlagValue::Float(f) => f.to_string(),
            };
            runsc_config.insert(k, v);
        }
        let mut runsc_timeouts = BTreeMap::new();
        for (verb, secs) in t.runsc_timeouts {
            if !runsc::Timeouts::known_verbs().any(|v| v == verb) {
                let known: Vec<_> = runsc::Timeouts::known_verbs().collect();
                return Err(Error::InvalidArgument(format!(
                    "invalid runsc options in {source}: runsc_timeouts key {verb:?} is not one of {}",
                    known.join(", ")
                )));
            }
            if !secs.is_finite() || secs < 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "invalid runsc options in {source}: runsc_timeouts.{verb} = {secs} is not a number of seconds >= 0"
                )));
            }
            runsc_timeouts.insert(verb, (secs * 1000.0).round() as u64);
        }
        let o = Options {
            binary_name: or_default(t.binary_name, DEFAULT_BINARY),
            root: or_default(t.root, DEFAULT_ROOT),
            log_path: t.log_path,
            log_level: t.log_level,
            io_uid: t.io_uid,
            io_gid: t.io_gid,
            shim_cgroup: t.shim_cgroup,
            grouping: t.grouping,
            enable_hibernate_server: t.enable_hibernate_server,
            runsc_config,
            runsc_timeouts,
            sandbox_control: t.sandbox_control,
            task_api: t.task_api,
        };
        if !o.log_level.is_empty() && o.log_level.parse::<log::LevelFilter>().is_err() {
            return Err(Error::InvalidArgument(format!(
                "invalid runsc options in {source}: log_level {:?} is not one of trace, debug, info, warn, error, off",
                o.log_level
            )));
        }
        Ok(o)
    }

    /// Whether an `Any` of `type_url` is runtime options [`Options::from_any`]
    /// reads (containerd 2.3 sends them among other extensions).
    pub fn is_runtime_options(type_url: &str) -> bool {
        let name = type_url.rsplit('/').next().unwrap_or_default();
        RUNTIME_OPTIONS_TYPES.contains(&name)
    }

    /// Reads the options a `CreateTaskRequest` carries. No options (or no
    /// config path) means defaults.
    pub fn from_any(any: Option<&Any>) -> Result<Options> {
        let Some(any) = any else {
            return Ok(Options::default());
        };
        if any.type_url.is_empty() && any.value.is_empty() {
            return Ok(Options::default());
        }
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        match name {
            "runtimeoptions.v1.Options" | "cri.runtimeoptions.v1.Options" => {
                let (type_url, config_path) = decode_runtime_options(&any.value)?;
                if !type_url.is_empty() && type_url != "io.containerd.runsc.v1.options" {
                    log::warn!("runtime options type_url {type_url:?} is not io.containerd.runsc.v1.options; reading {config_path:?} anyway");
                }
                if config_path.is_empty() {
                    return Ok(Options::default());
                }
                let text = read_options_file(Path::new(&config_path)).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "cannot read runsc options file {config_path}: {e}"
                    ))
                })?;
                Options::from_toml(&text, &config_path)
            }
            "containerd.runc.v1.Options" => {
                let o = containerd_shim::protos::shim::oci::Options::parse_from_bytes(&any.value)
                    .map_err(|e| Error::InvalidArgument(format!("invalid {name}: {e}")))?;
                let mut opts = Options {
                    binary_name: or_default(o.binary_name, DEFAULT_BINARY),
                    root: or_default(o.root, DEFAULT_ROOT),
                    io_uid: o.io_uid,
                    io_gid: o.io_gid,
                    shim_cgroup: o.shim_cgroup,
                    ..Options::default()
                };
                // runc's RuntimeRoot convention: a config.toml beside the root.
                let cfg = Path::new(&opts.root).join("config.toml");
                if let Ok(text) = read_options_file(&cfg) {
                    let from_file = Options::from_toml(&text, &cfg.to_string_lossy())?;
                    opts.runsc_config = from_file.runsc_config;
                }
                Ok(opts)
            }
            // containerd's client sends runc's CreateOptions to any runtime
            // (WithShimCgroup, IO uid/gid); gVisor's shim accepts them too.
            "containerd.linux.runc.CreateOptions" => {
                let c = decode_runc_create_options(&any.value)?;
                Ok(Options {
                    io_uid: c.io_uid,
                    io_gid: c.io_gid,
                    shim_cgroup: c.shim_cgroup,
                    ..Options::default()
                })
            }
            _ => Err(Error::InvalidArgument(format!(
                "unsupported runtime options type {:?}: expected runtimeoptions.v1.Options",
                any.type_url
            ))),
        }
    }

    /// runsc's `--root` for a containerd namespace.
    pub fn runsc_root(&self, namespace: &str) -> String {
        Path::new(&self.root)
            .join(namespace)
            .to_string_lossy()
            .into_owned()
    }
}

/// The most an options file may hold: a runsc.toml is a few KiB.
const OPTIONS_FILE_LIMIT: u64 = 1 << 20;

/// Reads an options file: a regular file of at most
/// [`OPTIONS_FILE_LIMIT`] bytes (a client could name `/dev/zero` or a FIFO).
fn read_options_file(path: &Path) -> std::io::Result<String> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > OPTIONS_FILE_LIMIT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {OPTIONS_FILE_LIMIT} bytes"),
        ));
    }
    let mut text = String::new();
    file.take(OPTIONS_FILE_LIMIT).read_to_string(&mut text)?;
    Ok(text)
}

fn or_default(s: String, d: &str) -> String {
    if s.is_empty() {
        d.to_string()
    } else {
        s
    }
}

/// The fields of runc's `containerd.linux.runc.CreateOptions` a runsc shim
/// can honour (`shim_cgroup = 9; io_uid = 10; io_gid = 11`); the rest are
/// runc's own (criu paths, pivot_root, ...) and skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RuncCreateOptions {
    shim_cgroup: String,
    io_uid: u32,
    io_gid: u32,
}

pub(crate) fn decode_runc_create_options(bytes: &[u8]) -> Result<RuncCreateOptions> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!("invalid containerd.linux.runc.CreateOptions: {e}"))
    };
    let mut is = CodedInputStream::from_bytes(bytes);
    let mut o = RuncCreateOptions::default();
    while let Some(tag) = is.read_raw_tag_or_eof().map_err(|e| bad(&e))? {
        match tag {
            0x4a => o.shim_cgroup = is.read_string().map_err(|e| bad(&e))?,
            0x50 => o.io_uid = is.read_uint32().map_err(|e| bad(&e))?,
            0x58 => o.io_gid = is.read_uint32().map_err(|e| bad(&e))?,
            t => skip(&mut is, t).map_err(|e| bad(&e))?,
        }
    }
    Ok(o)
}

fn skip(is: &mut CodedInputStream, tag: u32) -> std::result::Result<(), String> {
    let wire = containerd_shim::protos::protobuf::rt::WireType::new(tag & 7)
        .ok_or_else(|| format!("bad wire type in tag {tag}"))?;
    is.skip_field(wire).map_err(|e| e.to_string())
}

/// The type names [`Options::from_any`] reads.
const RUNTIME_OPTIONS_TYPES: [&str; 4] = [
    "runtimeoptions.v1.Options",
    "cri.runtimeoptions.v1.Options",
    "containerd.runc.v1.Options",
    "containerd.linux.runc.CreateOptions",
];

/// Decodes `runtimeoptions.v1.Options { string type_url = 1; string config_path = 2; }`
/// (containerd's CRI runtime options, not shipped in the shim protos).
pub(crate) fn decode_runtime_options(bytes: &[u8]) -> Result<(String, String)> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!("invalid runtimeoptions.v1.Options: {e}"))
    };
    let mut is = CodedInputStream::from_bytes(bytes);
    let (mut type_url, mut config_path) = (String::new(), String::new());
    while let Some(tag) = is.read_raw_tag_or_eof().map_err(|e| bad(&e))? {
        match tag {
            0x0a => type_url = is.read_string().map_err(|e| bad(&e))?,
            0x12 => config_path = is.read_string().map_err(|e| bad(&e))?,
            t => skip(&mut is, t).map_err(|e| bad(&e))?,
        }
    }
    Ok((type_url, config_path))
}

#[cfg(test)]
#[path = "options_tests.rs"]
pub(crate) mod tests;
