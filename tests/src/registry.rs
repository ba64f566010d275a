//! A read-only image registry on 127.0.0.1 for clients that insist on
//! pulling (containerd-stress pulls its image at start): the distribution
//! API's `GET /v2/`, manifests by tag or digest and blobs by digest, served
//! from one [`ImageLayout`] over plain HTTP (containerd's resolver speaks
//! HTTP to `localhost:<port>`). One thread per connection, one request per
//! connection; stopped when dropped.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use crate::image::ImageLayout;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A running registry serving one image as `<repository>:<any tag>`.
pub struct Registry {
    port: u16,
    repository: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Registry {
    /// Serves `layout` as `localhost:<port>/<repository>`.
    pub fn serve(layout: ImageLayout, repository: &str) -> std::io::Result<Registry> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, repo) = (stop.clone(), repository.to_string());
        let thread = thread::spawn(move || {
            let layout = Arc::new(layout);
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (layout, repo) = (layout.clone(), repo.clone());
                        thread::spawn(move || answer(conn, &layout, &repo));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Registry {
            port,
            repository: repository.to_string(),
            stop,
            thread: Some(thread),
        })
    }

    /// The image reference a client pulls (`localhost:<port>/<repo>:latest`).
    pub fn reference(&self) -> String {
        format!("localhost:{}/{}:latest", self.port, self.repository)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request. Anything not understood (a TLS hello included)
/// gets a 404 or a closed connection.
fn answer(conn: TcpStream, layout: &ImageLayout, repository: &str) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Headers are read and ignored.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let found = route(path, layout, repository);
    let mut out = &conn;
    let _ = match found {
        Some((body, digest, content_type)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nDocker-Content-Digest: {digest}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes()).and_then(|()| {
                if method == "HEAD" {
                    Ok(())
                } else {
                    out.write_all(&body)
                }
            })
        }
        None => out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let _ = conn.shutdown(Shutdown::Both);
}

/// The body, digest and type for `path`, if it names something served.
fn route(path: &str, layout: &ImageLayout, repository: &str) -> Option<(Vec<u8>, String, String)> {
    if path == "/v2/" || path == "/v2" {
        return Some((b"{}".to_vec(), String::new(), "application/json".into()));
    }
    let rest = path.strip_prefix("/v2/")?.strip_prefix(repository)?;
    if let Some(reference) = rest.strip_prefix("/manifests/") {
        let digest = if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            layout.manifest_digest.clone()
        };
        let body = fs::read(layout.blob(&digest)?).ok()?;
        return Some((body, digest, MANIFEST_TYPE.into()));
    }
    let digest = rest.strip_prefix("/blobs/")?;
    let body = fs::read(layout.blob(digest)?).ok()?;
    Some((body, digest.to_string(), "application/octet-stream".into()))
}
