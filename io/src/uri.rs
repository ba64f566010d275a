//! Parsing of the stdio strings containerd hands a shim.
//!
//! | input                              | result                          |
//! |------------------------------------|---------------------------------|
//! | `""`                               | [`Stdio::None`]                 |
//! | `/run/x/stdout`                    | [`Stdio::Fifo`]                 |
//! | `fifo:///run/x/stdout`             | [`Stdio::Fifo`]                 |
//! | `file:///var/log/c.log`            | [`Stdio::File`] (append)        |
//! | `binary:///usr/bin/logger?a=b&c=d` | [`Stdio::Binary`], args `a b c d` |

use std::path::{Path, PathBuf};

use url::Url;

use crate::error::{Error, Result};

/// One parsed stdio source or destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdio {
    /// Not requested.
    None,
    /// A FIFO (or, for outputs, any existing path) created by the client.
    Fifo(PathBuf),
    /// Append output to this file, creating it if missing.
    File(PathBuf),
    /// containerd's logging-binary protocol.
    Binary {
        /// Absolute path of the logging binary.
        path: PathBuf,
        /// Arguments built from the query: each `k=v` becomes `k`, `v`
        /// (first value of a repeated key only, as containerd does).
        args: Vec<String>,
    },
}

impl Stdio {
    /// Whether nothing was requested.
    pub fn is_none(&self) -> bool {
        matches!(self, Stdio::None)
    }
}

fn bad(uri: &str, reason: impl Into<String>) -> Error {
    Error::Uri {
        uri: uri.to_string(),
        reason: reason.into(),
    }
}

/// Parses one stdio string.
pub fn parse(s: &str) -> Result<Stdio> {
    if s.is_empty() {
        return Ok(Stdio::None);
    }
    if !s.contains("://") {
        return Ok(Stdio::Fifo(PathBuf::from(s)));
    }
    let url = Url::parse(s).map_err(|e| bad(s, e.to_string()))?;
    let path = || -> Result<PathBuf> {
        let p = url
            .to_file_path()
            .map_err(|()| bad(s, "path must be absolute and the host empty"))?;
        if p.as_os_str().is_empty() || p == Path::new("/") {
            return Err(bad(s, "missing path"));
        }
        Ok(p)
    };
    match url.scheme() {
        "fifo" => Ok(Stdio::Fifo(path()?)),
        "file" => Ok(Stdio::File(path()?)),
        "binary" => {
            let mut args: Vec<String> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for (k, v) in url.query_pairs() {
                if seen.iter().any(|x| *x == *k) {
                    continue;
                }
                seen.push(k.to_string());
                args.push(k.into_owned());
                args.push(v.into_owned());
            }
            Ok(Stdio::Binary {
                path: path()?,
                args,
            })
        }
        other => Err(bad(s, format!("unsupported scheme {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(p: &str) -> Stdio {
        Stdio::Fifo(PathBuf::from(p))
    }

    #[test]
    fn table() {
        let bin = |p: &str, a: &[&str]| Stdio::Binary {
            path: PathBuf::from(p),
            args: a.iter().map(|s| s.to_string()).collect(),
        };
        let cases: Vec<(&str, Option<Stdio>)> = vec![
            ("", Some(Stdio::None)),
            ("/run/c/1-stdout", Some(fifo("/run/c/1-stdout"))),
            ("relative/fifo", Some(fifo("relative/fifo"))),
            ("fifo:///run/c/x", Some(fifo("/run/c/x"))),
            (
                "file:///var/log/c.log",
                Some(Stdio::File("/var/log/c.log".into())),
            ),
            (
                "file:///var/log/a%20b.log",
                Some(Stdio::File("/var/log/a b.log".into())),
            ),
            (
                "binary:///usr/bin/logger",
                Some(bin("/usr/bin/logger", &[])),
            ),
            (
                "binary:///usr/bin/logger?id=1&mode=x%20y",
                Some(bin("/usr/bin/logger", &["id", "1", "mode", "x y"])),
            ),
            ("binary:///l?k&k=2", Some(bin("/l", &["k", ""]))),
            ("file://host/var/log", None),
            ("file://", None),
            ("binary://", None),
            ("http://example.com/x", None),
            ("npipe:///x", None),
            ("::://", None),
        ];
        for (input, want) in cases {
            let got = parse(input);
            match want {
                Some(w) => assert_eq!(got.unwrap(), w, "input {input:?}"),
                None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn error_names_uri() {
        let e = parse("http://x/y").unwrap_err().to_string();
        assert!(
            e.contains("http://x/y") && e.contains("unsupported scheme"),
            "{e}"
        );
    }
}
