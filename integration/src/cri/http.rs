//! HTTP through a pod's network: a client for the host side and a busybox
//! server script for the container side.

use std::time::Duration;

/// GET / from `addr` (loopback or the test's own network only), retried
/// until it answers or 15 s pass.
pub fn http_get(addr: &str) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = std::net::TcpStream::connect_timeout(
            &addr.parse().expect("socket address"),
            Duration::from_secs(1),
        )
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        });
        match attempt {
            Ok(body) if !body.is_empty() => return body,
            _ if std::time::Instant::now() > deadline => {
                panic!("no answer from {addr}: {attempt:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A busybox shell script serving "hello-from-gvisor" over HTTP on `listen`
/// (`port` or `addr:port`).
pub fn serve_http_script(listen: &str) -> String {
    format!(
        "mkdir -p /www && echo hello-from-gvisor > /www/index.html && exec httpd -f -p {listen} -h /www"
    )
}
