//! A read-only OCI distribution registry on 127.0.0.1 serving the critest
//! images ([`super::images`]), so containerd pulls them as critest asks for
//! them (`registry.k8s.io/...`, `gcr.io/...`, `k8s.gcr.io/...`) without
//! leaving the host: containerd's `hosts.toml` ([`hosts_dir`]) sends each of
//! those registries here, and containerd names the registry it meant in the
//! `ns` query parameter.
//!
//! It answers `GET`/`HEAD` of `/v2/`, `/v2/<name>/manifests/<tag|digest>`
//! and `/v2/<name>/blobs/<digest>` (with `Range`), one request per
//! connection, each connection on a thread of its own.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use super::images::{Content, MANIFEST_TYPE};

/// The registries critest pulls from, all sent to this one.
pub const HOSTS: &[&str] = &["registry.k8s.io", "gcr.io", "k8s.gcr.io"];

/// A running registry; dropping it stops it.
pub struct Registry {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Registry {
    /// Serves `content` on a free port of 127.0.0.1.
    pub fn serve(content: Content) -> Result<Registry, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("registry: bind: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("registry: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let content = Arc::new(content);
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let content = content.clone();
                thread::spawn(move || {
                    if let Err(e) = answer(conn, &content) {
                        eprintln!("registry: {e}");
                    }
                });
            }
        });
        Ok(Registry {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `dir/<host>/hosts.toml` for each of [`HOSTS`], sending pulls
/// and resolves to `addr` over plain HTTP: as a mirror and as the
/// registry itself, so a miss never goes to the real registry.
pub fn hosts_dir(dir: &Path, addr: SocketAddr) -> Result<(), String> {
    for host in HOSTS {
        let d = dir.join(host);
        fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        let toml = format!(
            "# critest's images, served by the test's own registry.\n\
             server = \"http://{addr}\"\n\n\
             [host.\"http://{addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        fs::write(d.join("hosts.toml"), toml).map_err(|e| format!("write hosts.toml: {e}"))?;
    }
    Ok(())
}

/// One request on `conn`, answered and closed.
fn answer(conn: TcpStream, content: &Content) -> Result<(), String> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read request: {e}"))?;
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader
            .read_line(&mut h)
            .map_err(|e| format!("read header: {e}"))?
            == 0
        {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = parse_range(v.trim());
            }
        }
    }
    if line.trim().is_empty() {
        // A connection that sent nothing (the wake-up from drop).
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let reply = route(method, target, range, content);
    if reply.status >= 400 {
        eprintln!("registry: {} {method} {target}", reply.status);
    }
    send(conn, method == "HEAD", reply)
}

struct Reply<'a> {
    status: u16,
    content_type: &'a str,
    digest: Option<&'a str>,
    body: &'a [u8],
    /// (first, last, total) of a partial reply.
    partial: Option<(usize, usize, usize)>,
}

const NOT_FOUND: &[u8] =
    br#"{"errors":[{"code":"NAME_UNKNOWN","message":"not served by the critest registry"}]}"#;

fn not_found<'a>() -> Reply<'a> {
    Reply {
        status: 404,
        content_type: "application/json",
        digest: None,
        body: NOT_FOUND,
        partial: None,
    }
}

/// `bytes=FIRST-[LAST]`.
fn parse_range(v: &str) -> Option<(usize, Option<usize>)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let first = a.parse().ok()?;
    let last = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    Some((first, last))
}

fn route<'a>(
    method: &str,
    target: &str,
    range: Option<(usize, Option<usize>)>,
    content: &'a Content,
) -> Reply<'a> {
    if method != "GET" && method != "HEAD" {
        return Reply {
            status: 405,
            ..not_found()
        };
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let ns = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ns="))
        .unwrap_or("");
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    if rest.is_empty() {
        return Reply {
            status: 200,
            content_type: "application/json",
            digest: None,
            body: b"{}",
            partial: None,
        };
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        let digest = if reference.starts_with("sha256:") {
            content.manifests.get(reference)
        } else {
            let repo = if ns.is_empty() {
                name.to_string()
            } else {
                format!("{ns}/{name}")
            };
            content.tags.get(&(repo, reference.to_string()))
        };
        return match digest.and_then(|d| content.blobs.get_key_value(d)) {
            Some((d, body)) => Reply {
                status: 200,
                content_type: MANIFEST_TYPE,
                digest: Some(d),
                body,
                partial: None,
            },
            None => not_found(),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        let Some((d, body)) = content.blobs.get_key_value(digest) else {
            return not_found();
        };
        let mut reply = Reply {
            status: 200,
            content_type: "application/octet-stream",
            digest: Some(d),
            body,
            partial: None,
        };
        if let Some((first, last)) = range {
            let last = last.unwrap_or(usize::MAX).min(body.len().saturating_sub(1));
            if first > last {
                return Reply {
                    status: 416,
                    ..not_found()
                };
            }
            reply.status = 206;
            reply.body = &body[first..=last];
            reply.partial = Some((first, last, body.len()));
        }
        return reply;
    }
    not_found()
}

fn send(mut conn: TcpStream, head: bool, r: Reply) -> Result<(), String> {
    let reason = match r.status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Range Not Satisfiable",
    };
    let mut h = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    if let Some(d) = r.digest {
        h.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
    }
    if let Some((first, last, total)) = r.partial {
        h.push_str(&format!("Content-Range: bytes {first}-{last}/{total}\r\n"));
    }
    h.push_str("\r\n");
    conn.write_all(h.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    if !head {
        conn.write_all(r.body).map_err(|e| format!("write: {e}"))?;
    }
    conn.flush().map_err(|e| format!("write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        let mut c = Content::default();
        c.blobs.insert("sha256:aa".into(), b"manifest".to_vec());
        c.blobs.insert("sha256:bb".into(), b"0123456789".to_vec());
        c.manifests.insert("sha256:aa".into());
        c.tags.insert(
            ("registry.k8s.io/pause".into(), "3.9".into()),
            "sha256:aa".into(),
        );
        c
    }

    #[test]
    fn tags_resolve_in_the_registry_containerd_names() {
        let c = content();
        let r = route(
            "HEAD",
            "/v2/pause/manifests/3.9?ns=registry.k8s.io",
            None,
            &c,
        );
        assert_eq!((r.status, r.digest), (200, Some("sha256:aa")));
        assert_eq!(
            route("GET", "/v2/pause/manifests/3.9?ns=gcr.io", None, &c).status,
            404
        );
        assert_eq!(
            route("GET", "/v2/pause/manifests/sha256:aa", None, &c).body,
            b"manifest"
        );
    }

    #[test]
    fn blobs_serve_ranges() {
        let c = content();
        let r = route(
            "GET",
            "/v2/pause/blobs/sha256:bb",
            parse_range("bytes=3-"),
            &c,
        );
        assert_eq!((r.status, r.body), (206, &b"3456789"[..]));
        assert_eq!(r.partial, Some((3, 9, 10)));
        let r = route(
            "GET",
            "/v2/pause/blobs/sha256:bb",
            parse_range("bytes=0-1"),
            &c,
        );
        assert_eq!(r.body, b"01");
        assert_eq!(
            route("GET", "/v2/pause/blobs/sha256:cc", None, &c).status,
            404
        );
    }
}
