//! `kubectl exec -it`, `kubectl attach` and terminal resize through the CRI
//! streaming server, over its WebSocket protocol (`v4.channel.k8s.io`:
//! every message starts with its channel, 0 stdin, 1 stdout, 2 stderr,
//! 3 status, 4 resize).

use std::{
    net::TcpStream,
    time::{Duration, Instant},
};

use integration::cri::{Cri, CtrSpec, PodSpec};
use k8s_cri::v1::{AttachRequest, ExecRequest};
use tungstenite::{
    client::IntoClientRequest, http::HeaderValue, stream::MaybeTlsStream, Message, WebSocket,
};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn open(url: &str) -> Ws {
    let mut req = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let (mut ws, _) = tungstenite::connect(req).unwrap();
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    ws
}

fn send(ws: &mut Ws, channel: u8, data: &[u8]) {
    let mut m = vec![channel];
    m.extend_from_slice(data);
    ws.send(Message::Binary(m.into())).unwrap();
}

fn resize(ws: &mut Ws, width: u16, height: u16) {
    let r = format!("{{\"Width\":{width},\"Height\":{height}}}");
    send(ws, 4, r.as_bytes());
}

/// Terminal output read until it contains `want` (or 15 s pass).
fn read_until(ws: &mut Ws, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = String::new();
    while !out.contains(want) && Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Binary(b)) if b.len() > 1 && b[0] == 1 => {
                out.push_str(&String::from_utf8_lossy(&b[1..]))
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    out
}

fn tty_pod(cri: &mut Cri, name: &str) -> String {
    let pod = cri.run_pod(&PodSpec {
        name: name.into(),
        ..Default::default()
    });
    // `kubectl run -it`: a member with a terminal and stdin.
    let spec = CtrSpec {
        tty: true,
        args: vec!["sh".into()],
        ..CtrSpec::sh("shell", "")
    };
    cri.run_container(&pod, &spec, false)
}

#[test]
fn exec_it_with_a_resized_terminal() {
    let mut cri = Cri::start();
    let id = tty_pod(&mut cri, "execit");
    let req = ExecRequest {
        container_id: id,
        cmd: vec!["sh".into(), "-c".into(), "sleep 1; stty size".into()],
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
    };
    let url = cri
        .rt
        .block_on(cri.client.exec(req))
        .unwrap()
        .into_inner()
        .url;
    let mut ws = open(&url);
    resize(&mut ws, 100, 30);
    let out = read_until(&mut ws, "30 100");
    assert!(out.contains("30 100"), "{out:?}");
    drop(ws);
    cri.stop_and_check();
}

#[test]
fn attach_to_a_tty_member_and_resize_it() {
    let mut cri = Cri::start();
    let id = tty_pod(&mut cri, "attach");
    let req = AttachRequest {
        container_id: id,
        stdin: true,
        tty: true,
        stdout: true,
        stderr: false,
    };
    let url = cri
        .rt
        .block_on(cri.client.attach(req))
        .unwrap()
        .into_inner()
        .url;
    let mut ws = open(&url);
    send(&mut ws, 0, b"echo attached-$((40+2))\n");
    let out = read_until(&mut ws, "attached-42");
    assert!(out.contains("attached-42"), "{out:?}");
    resize(&mut ws, 90, 25);
    std::thread::sleep(Duration::from_millis(300));
    send(&mut ws, 0, b"stty size\n");
    let out = read_until(&mut ws, "25 90");
    assert!(out.contains("25 90"), "{out:?}");
    drop(ws);
    cri.stop_and_check();
}
