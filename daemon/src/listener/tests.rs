use std::time::{Duration, Instant};

use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const LIMITS: ListenerLimits =
    ListenerLimits { max_connections: 2, header_read_timeout_seconds: 1, body_read_timeout_seconds: 1 };

/// An echo server (POST /echo answers the body's length) within `limits`.
async fn start(limits: ListenerLimits) -> (std::net::SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body.len().to_string() }));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { serve(listener, app, &limits, 64, stop).await.unwrap() }
    });
    (addr, stop, task)
}

/// Read until the server closes the connection (EOF or reset); what it sent, and when it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Instant) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), Instant::now()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {within:?}; got {:?}", String::from_utf8_lossy(&out)),
        }
    }
}

#[tokio::test]
async fn headers_never_finished_are_cut_at_the_header_deadline() {
    let (addr, _stop, _task) = start(LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let held = closed - started;
    assert!(held >= Duration::from_millis(900) && held < Duration::from_secs(3), "held {held:?}");
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_the_body_deadline_not_reset_by_each_byte() {
    let (addr, _stop, _task) = start(LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n").await.unwrap();
    let started = Instant::now();
    // One byte every 200 ms: each chunk arrives well within a second of the last.
    let (mut r, mut w) = s.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            if w.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(6), r.read(&mut buf)).await.expect("still open after 6 s") {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let held = started.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(held < Duration::from_secs(3), "held {held:?}");
    trickle.abort();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop, _task) = start(LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").await.unwrap();
    let sent = Instant::now();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n\r\n3"), "{text}");
    assert!(closed - sent < Duration::from_secs(3), "idle for {:?}", closed - sent);
}

#[tokio::test]
async fn a_body_within_the_deadline_is_served_and_a_large_one_refused() {
    let (addr, stop, task) = start(LIMITS).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let ok = client.post(format!("http://{addr}/echo")).body("hello").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "5");
    let big = client.post(format!("http://{addr}/echo")).body(vec![b'x'; 65]).send().await.unwrap();
    assert_eq!(big.status(), 413);
    assert!(big.text().await.unwrap().contains("larger than 64 bytes"));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("serve returns after shutdown").unwrap();
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_until_a_slot_frees() {
    let limits = ListenerLimits { header_read_timeout_seconds: 30, body_read_timeout_seconds: 30, ..LIMITS };
    let (addr, _stop, _task) = start(limits).await;
    // Two silent connections take both slots (give the server a moment to accept them).
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/echo");
    let waiting = client.post(&url).body("abc").timeout(Duration::from_millis(700)).send().await;
    assert!(waiting.is_err(), "served beyond the cap: {waiting:?}");
    drop(first);
    let served = client.post(&url).body("abc").timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(served.text().await.unwrap(), "3");
}

#[test]
fn zero_limits_are_refused() {
    for bad in [
        ListenerLimits { max_connections: 0, ..ListenerLimits::default() },
        ListenerLimits { header_read_timeout_seconds: 0, ..ListenerLimits::default() },
        ListenerLimits { body_read_timeout_seconds: 0, ..ListenerLimits::default() },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    assert!(ListenerLimits::default().validate().is_ok());
}
