//! `kubectl port-forward` (`crictl port-forward`) into a gVisor pod,
//! through containerd's streaming server over its WebSocket protocol
//! (`v4.channel.k8s.io`: per port a data channel 0 and an error channel 1,
//! each opening with the port as two little-endian bytes).

use std::{
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use integration::cri::{serve_http_script, Cri, CtrSpec, PodSpec};
use k8s_cri::v1::PortForwardRequest;
use tungstenite::{
    client::IntoClientRequest, http::HeaderValue, stream::MaybeTlsStream, Message, WebSocket,
};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// One forwarded connection to `port`: sends an HTTP GET, returns what
/// came back on the data channel (and the error channel's text).
fn get_through(url: &str, port: u16) -> (String, String) {
    let mut req = format!("{}?port={port}", url.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let (mut ws, _): (Ws, _) = tungstenite::connect(req).unwrap();
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let mut get = vec![0u8];
    get.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
    ws.send(Message::Binary(get.into())).unwrap();
    let (mut data, mut error) = (Vec::new(), Vec::new());
    // Each channel opens with the port; skip those two bytes.
    let (mut data_seen, mut error_seen) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !String::from_utf8_lossy(&data).contains("hello") {
        match ws.read() {
            Ok(Message::Binary(b)) if !b.is_empty() => {
                let (seen, into) = match b[0] {
                    0 => (&mut data_seen, &mut data),
                    _ => (&mut error_seen, &mut error),
                };
                for byte in &b[1..] {
                    if *seen >= 2 {
                        into.push(*byte);
                    }
                    *seen += 1;
                }
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
    let _ = ws.close(None);
    (
        String::from_utf8_lossy(&data).into_owned(),
        String::from_utf8_lossy(&error).into_owned(),
    )
}

fn redirect_rules(netns: &Path) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["iptables", "-w", "5", "-t", "nat", "-S", "OUTPUT"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("REDIRECT"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn port_forward_serves_http_from_a_pod() {
    let mut cri = Cri::start();
    let pod = cri.run_pod(&PodSpec {
        name: "pf".into(),
        ..Default::default()
    });
    cri.run_container(&pod, &CtrSpec::sh("web", &serve_http_script("8080")), false);
    // containerd's streaming server forwards the ports of the request.
    let url_for = |cri: &mut Cri, port: i32| {
        let req = PortForwardRequest {
            pod_sandbox_id: pod.0.clone(),
            port: vec![port],
        };
        cri.rt
            .block_on(cri.client.port_forward(req))
            .unwrap()
            .into_inner()
            .url
    };
    let url = |cri: &mut Cri| url_for(cri, 8080);
    // The server may take a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (body, error) = loop {
        let (body, error) = get_through(&url(&mut cri), 8080);
        if body.contains("hello-from-gvisor") || Instant::now() > deadline {
            break (body, error);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(body.contains("hello-from-gvisor"), "{body:?} {error:?}");
    // Concurrent forwarded connections, each its own stream.
    let urls: Vec<String> = (0..6).map(|_| url(&mut cri)).collect();
    let answers: Vec<(String, String)> = std::thread::scope(|s| {
        let all: Vec<_> = urls
            .iter()
            .map(|u| s.spawn(move || get_through(u, 8080)))
            .collect();
        all.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (body, error) in &answers {
        assert!(body.contains("hello-from-gvisor"), "{body:?} {error:?}");
    }
    // A port nothing listens on fails that stream alone.
    let (body, _) = get_through(&url_for(&mut cri, 9), 9);
    assert!(!body.contains("hello"), "{body:?}");
    // The rule lives in the pod's namespace only, and goes with the pod.
    let netns = cri.pod_netns(&pod.0);
    assert_eq!(redirect_rules(&netns).lines().count(), 1);
    assert!(!redirect_rules(Path::new("/proc/self/ns/net")).contains("127.0.0.1/32"));
    cri.stop_pod(&pod.0);
    // Removed just after the sandbox's exit, unless the namespace went first.
    let deadline = Instant::now() + Duration::from_secs(5);
    while netns.exists() && !redirect_rules(&netns).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if netns.exists() {
        assert_eq!(
            redirect_rules(&netns),
            "",
            "rule left after the pod stopped"
        );
    }
    cri.stop_and_check();
}
