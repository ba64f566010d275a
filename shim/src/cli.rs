//! What the binary answers itself, before (and instead of) starting a shim:
//! `-v`/`-version`, and `-info`, containerd 2.x's runtime introspection
//! (`ctr plugins inspect-runtime`, the CRI plugin's feature checks): a
//! `containerd.types.RuntimeInfo` protobuf on stdout for the runtime
//! options given on stdin. containerd-shim parses both flags but then goes
//! on to need containerd's environment.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    path::Path,
};

use containerd_shim::protos::{
    protobuf::{well_known_types::any::Any, Message, MessageField},
    types::introspection::{RuntimeInfo, RuntimeVersion},
};

use crate::RUNTIME_NAME;

/// The `type_url` containerd decodes runtime features by.
const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The OCI runtime spec versions runsc (0.0~20221219 and 0.0~20240729)
/// runs.
const OCI_VERSION_MIN: &str = "1.0.0";
const OCI_VERSION_MAX: &str = "1.1.0";

/// What the command line asks of the binary itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `-v` / `-version`: print the version.
    Version,
    /// `-info`: print `RuntimeInfo` for the options on stdin.
    Info,
}

/// The request in `args` (without the program name), if it is one the
/// binary answers itself.
pub fn request<S: AsRef<OsStr>>(args: &[S]) -> Option<Request> {
    let flags = containerd_shim::parse(args).ok()?;
    if flags.version {
        Some(Request::Version)
    } else if flags.info {
        Some(Request::Info)
    } else {
        None
    }
}

/// Answers what this process's command line asks of the binary itself,
/// over its standard streams; returns the exit code, or `None` when the
/// command line is for the shim.
pub fn answer_if_asked() -> Option<i32> {
    let args: Vec<_> = std::env::args_os().collect();
    let request = request(args.get(1..).unwrap_or_default())?;
    let program = args
        .first()
        .map(|a| a.to_string_lossy())
        .unwrap_or_default();
    let (mut input, mut out, mut err) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    Some(answer(request, &program, &mut input, &mut out, &mut err))
}

/// Answers `request` for the binary at `program`, reading containerd's
/// input from `input`; returns the exit code.
pub fn answer(
    request: Request,
    program: &str,
    input: &mut impl Read,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    let res = match request {
        Request::Version => out.write_all(version_text(program).as_bytes()),
        Request::Info => {
            let mut raw = Vec::new();
            match input.read_to_end(&mut raw).and_then(|_| runtime_info(&raw)) {
                Ok(bytes) => out.write_all(&bytes),
                Err(why) => {
                    let _ = writeln!(err, "{RUNTIME_NAME}: -info: {why}");
                    return 1;
                }
            }
        }
    };
    match res.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{RUNTIME_NAME}: write answer: {e}");
            1
        }
    }
}

/// What `-v` prints, in the layout of containerd's own shims.
pub fn version_text(program: &str) -> String {
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.into(), |n| n.to_string_lossy());
    format!(
        "{name}:\n  Version:  {}\n  Runtime:  {RUNTIME_NAME}\n",
        env!("CARGO_PKG_VERSION"),
    )
}

/// `RuntimeInfo` for the runtime options `options` (a serialized `Any`,
/// echoed back as containerd's shims do; empty for none). The features say
/// only which spec versions runsc runs; everything else is left unknown, so
/// nothing is taken as supported that runsc may refuse.
pub fn runtime_info(options: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let options = if options.is_empty() {
        None
    } else {
        let any = Any::parse_from_bytes(options).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("decode runtime options: {e}"),
            )
        })?;
        Some(any)
    };
    let features = serde_json::json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
    });
    let info = RuntimeInfo {
        name: RUNTIME_NAME.into(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }),
        options: options.into(),
        features: MessageField::some(Any {
            type_url: FEATURES_TYPE_URL.into(),
            value: serde_json::to_vec(&features)?,
            ..Default::default()
        }),
        ..Default::default()
    };
    info.write_to_bytes().map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_info_are_asked_by_their_flags_only() {
        for flag in ["-v", "-version", "--version"] {
            assert_eq!(request(&[flag]), Some(Request::Version), "{flag}");
        }
        assert_eq!(request(&["-info"]), Some(Request::Info));
        let start = ["-namespace", "k8s.io", "-id", "c1", "start"];
        assert_eq!(request(&start), None);
        assert_eq!(request::<&str>(&[]), None);
        assert_eq!(request(&["-no-such-flag"]), None);
    }

    #[test]
    fn version_text_names_the_binary_and_runtime() {
        let t = version_text("/usr/local/bin/containerd-shim-runsc-v1");
        let head = "containerd-shim-runsc-v1:\n  Version:  ";
        assert!(t.starts_with(head), "{t}");
        assert!(t.contains(env!("CARGO_PKG_VERSION")), "{t}");
        assert!(t.contains("io.containerd.runsc.v1"), "{t}");
    }

    fn info_for(input: &[u8]) -> (i32, Vec<u8>, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = answer(Request::Info, "shim", &mut &input[..], &mut out, &mut err);
        (code, out, String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn info_names_the_runtime_echoes_the_options_and_gives_spec_versions() {
        let options = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![0x12, 3, b'/', b'x', b'y'],
            ..Default::default()
        };
        let (code, out, err) = info_for(&options.write_to_bytes().unwrap());
        assert_eq!(code, 0, "{err}");
        let info = RuntimeInfo::parse_from_bytes(&out).unwrap();
        assert_eq!(info.name, "io.containerd.runsc.v1");
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(*info.options, options);
        assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
        let features: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(
            features,
            serde_json::json!({"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0"})
        );
    }

    #[test]
    fn info_without_options_has_none_and_bad_options_are_refused() {
        let (code, out, _) = info_for(b"");
        assert_eq!(code, 0);
        assert!(RuntimeInfo::parse_from_bytes(&out)
            .unwrap()
            .options
            .is_none());
        let (code, out, err) = info_for(b"\xff\xff\xff");
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(err.contains("decode runtime options"), "{err}");
    }
}
