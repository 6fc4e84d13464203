//! Plain HTTP answers, the handshake deadline and the connection cap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use switchboard::Config;

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[test]
fn healthz_answers_200_with_length_and_close() {
    let addr = start(config());
    let response = get(addr, "/healthz");
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK");
    assert!(response.contains("Content-Length: 3\r\n"), "{response}");
    assert!(response.contains("Connection: close\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
}

#[test]
fn unknown_path_is_404() {
    let addr = start(config());
    assert_eq!(
        status_line(&get(addr, "/no/such/thing")),
        "HTTP/1.1 404 Not Found"
    );
}

#[test]
fn websocket_path_without_upgrade_is_426() {
    let addr = start(config());
    for path in ["/ws/concierge", "/ws/echo"] {
        let response = get(addr, path);
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 426 Upgrade Required",
            "{path}"
        );
        assert!(response.contains("Upgrade: websocket\r\n"), "{response}");
    }
}

#[test]
fn wrong_websocket_version_is_426_naming_13() {
    let addr = start(config());
    let response = http(
        addr,
        "GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(status_line(&response), "HTTP/1.1 426 Upgrade Required");
    assert!(
        response.contains("Sec-WebSocket-Version: 13\r\n"),
        "{response}"
    );
}

#[test]
fn upgrade_without_key_is_400() {
    let addr = start(config());
    let response = http(
        addr,
        "GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(status_line(&response), "HTTP/1.1 400 Bad Request");
}

#[test]
fn garbage_instead_of_http_is_400() {
    let addr = start(config());
    let response = http(addr, "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n");
    assert_eq!(status_line(&response), "HTTP/1.1 400 Bad Request");
}

#[test]
fn oversized_request_head_is_431() {
    let addr = start(config());
    let filler = "X-Filler: ".to_string() + &"a".repeat(100) + "\r\n";
    let too_many = http(
        addr,
        &format!("GET / HTTP/1.1\r\n{}\r\n", filler.repeat(200)),
    );
    assert_eq!(
        status_line(&too_many),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let too_long = http(
        addr,
        &format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(20_000)),
    );
    assert_eq!(
        status_line(&too_long),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn index_lists_the_endpoints() {
    let addr = start(config());
    let response = get(addr, "/");
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK");
    assert!(response.contains("/ws/concierge"), "{response}");
}

#[test]
fn metrics_count_connections() {
    let addr = start(config());
    let client = Client::connect(addr, "/ws/echo");
    assert_eq!(metric(addr, "switchboard_connections_open"), 1);
    assert_eq!(metric(addr, "switchboard_connections_total"), 1);
    let response = get(addr, "/metrics");
    assert!(
        response.contains("# TYPE switchboard_connections_open gauge"),
        "{response}"
    );
    client.close();
    wait_until("the connection to be released", || {
        metric(addr, "switchboard_connections_open") == 0
    });
}

/// A client that sends its request one byte every 50 ms for 20 s is cut off
/// at the 1 s handshake deadline: the trickle does not extend it.
#[test]
fn trickling_client_is_cut_off_at_the_handshake_deadline() {
    let deadline = Duration::from_secs(1);
    let addr = start(Config {
        handshake_timeout: deadline,
        ..config()
    });
    // Before connecting: the server's deadline runs from its accept, which
    // follows, so however this thread is scheduled the cut-off is later.
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let trickling = Arc::new(AtomicBool::new(true));
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let trickling = trickling.clone();
        std::thread::spawn(move || {
            let request = b"GET /ws/echo HTTP/1.1\r\nHost: trickle\r\nX-Slow: "
                .iter()
                .chain(std::iter::repeat(&b'a'));
            for &byte in request.take(400) {
                if !trickling.load(Ordering::Relaxed) || stream.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let elapsed = started.elapsed();
    trickling.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    let response = String::from_utf8_lossy(&response);
    assert_eq!(status_line(&response), "HTTP/1.1 408 Request Timeout");
    // The trickle would have lasted 20 s; the server ended it long before.
    assert!(elapsed >= deadline, "cut off too early: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(15),
        "not cut off at the deadline: {elapsed:?}"
    );
    assert_eq!(
        metric(
            addr,
            "switchboard_handshake_failures_total{reason=\"timeout\"}"
        ),
        1
    );
}

#[test]
fn silent_socket_is_closed_at_the_deadline_and_others_still_connect() {
    // The echo client must finish its handshake within the deadline too.
    let addr = start(Config {
        handshake_timeout: Duration::from_secs(2),
        ..config()
    });
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut echo = Client::connect(addr, "/ws/echo");
    echo.send_text("still here");
    assert_eq!(echo.recv().into_text().unwrap().as_str(), "still here");
    let mut response = String::new();
    let _ = silent.read_to_string(&mut response);
    assert_eq!(status_line(&response), "HTTP/1.1 408 Request Timeout");
}

#[test]
fn connection_cap_refuses_upgrades_with_503_until_a_slot_frees() {
    let addr = start(Config {
        max_connections: 2,
        ..config()
    });
    let first = Client::connect(addr, "/ws/echo");
    let _second = Client::connect(addr, "/ws/concierge");
    match Client::connect_with(addr, "/ws/echo", None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        Err(other) => panic!("expected HTTP 503, got {other}"),
        Ok(_) => panic!("third connection accepted over a cap of 2"),
    }
    assert_eq!(
        metric(
            addr,
            "switchboard_handshake_failures_total{reason=\"at_capacity\"}"
        ),
        1
    );
    // Plain HTTP is not capped.
    assert_eq!(status_line(&get(addr, "/healthz")), "HTTP/1.1 200 OK");
    first.close();
    wait_until("a slot to free", || {
        metric(addr, "switchboard_connections_open") == 1
    });
    let mut third = Client::connect(addr, "/ws/echo");
    third.send_text("in");
    assert_eq!(third.recv().into_text().unwrap().as_str(), "in");
}

#[test]
fn sockets_over_the_handshake_cap_get_503_at_once() {
    let addr = start(Config {
        max_handshakes: 2,
        ..config()
    });
    let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // /metrics itself needs a handshake slot, so wait on the gauge by probing.
    wait_until("two sockets in their handshake", || {
        let response = get(addr, "/healthz");
        status_line(&response) == "HTTP/1.1 503 Service Unavailable"
    });
    drop(silent);
    wait_until("the slots to free", || {
        status_line(&get(addr, "/healthz")) == "HTTP/1.1 200 OK"
    });
    assert!(
        metric(
            addr,
            "switchboard_handshake_failures_total{reason=\"busy\"}"
        ) >= 1
    );
    // A slot is given back just after its answer is written, so the last
    // request's may still be held for an instant.
    let mut echo = None;
    wait_until("a WebSocket to get a slot", || {
        echo = Client::connect_with(addr, "/ws/echo", None).ok();
        echo.is_some()
    });
    let mut echo = echo.unwrap();
    echo.send_text("through");
    assert_eq!(echo.recv().into_text().unwrap().as_str(), "through");
}

/// The header lines of a response, names lower-cased.
fn header_names(response: &str) -> Vec<String> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect()
}

#[test]
fn no_response_carries_a_header_twice_and_every_status_has_its_phrase() {
    let addr = start(Config {
        admin_token: Some("adm".into()),
        ..config()
    });
    let requests = [
        ("GET /healthz HTTP/1.1\r\n\r\n", "200 OK"),
        ("GET /metrics HTTP/1.1\r\n\r\n", "200 OK"),
        ("GET / HTTP/1.1\r\n\r\n", "200 OK"),
        ("GET /ws/concierge HTTP/1.1\r\n\r\n", "426 Upgrade Required"),
        ("GET /nope HTTP/1.1\r\n\r\n", "404 Not Found"),
        ("DELETE /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (
            "POST /admin/reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "401 Unauthorized",
        ),
        (
            "GET /admin/reload HTTP/1.1\r\n\r\n",
            "405 Method Not Allowed",
        ),
        ("garbage\r\n\r\n", "400 Bad Request"),
    ];
    for (request, status) in requests {
        let response = http(addr, request);
        assert_eq!(
            status_line(&response),
            format!("HTTP/1.1 {status}"),
            "{request:?}"
        );
        let mut names = header_names(&response);
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "{request:?}: {response}");
    }
    // The 426 keeps its `Connection: upgrade` with the close, in one line.
    let upgrade_required = get(addr, "/ws/echo");
    assert!(
        upgrade_required.contains("Connection: Upgrade, close\r\n"),
        "{upgrade_required}"
    );
}

#[test]
fn a_wrong_method_is_405_with_allow_and_head_gets_the_head_only() {
    let addr = start(config());
    for path in ["/metrics", "/healthz", "/", "/endpoints"] {
        let response = http(addr, &format!("DELETE {path} HTTP/1.1\r\n\r\n"));
        assert_eq!(status_line(&response), "HTTP/1.1 405 Method Not Allowed");
        assert!(response.contains("Allow: GET, HEAD\r\n"), "{response}");
    }
    let head = http(addr, "HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(status_line(&head), "HTTP/1.1 200 OK");
    assert!(head.contains("Content-Length: 3\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
}

/// A small parser of the Prometheus text format, enough to check what a
/// scraper relies on.
#[test]
fn metrics_parse_with_help_and_type_for_every_family_and_no_fact_twice() {
    let addr = start(config());
    let response = get(addr, "/metrics");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let mut help = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeMap::new();
    let mut series = std::collections::BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap();
            assert!(!text.is_empty(), "{line}");
            assert!(help.insert(name.to_string()), "HELP twice: {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {name}"
            );
        } else {
            let (key, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
            let family = key.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    family
                        .strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(family);
            assert!(types.contains_key(family), "no TYPE for {family}");
            assert!(help.contains(family), "no HELP for {family}");
            assert!(series.insert(key.to_string()), "{key} twice");
        }
    }
    for gone in [
        "switchboard_messages_in_total",
        "switchboard_frames_out_total",
        "switchboard_connections_refused_total",
        "switchboard_handshakes_refused_total",
        "switchboard_handshake_timeouts_total",
    ] {
        assert!(!types.contains_key(gone), "{gone} repeats another series");
    }
    for wanted in [
        "process_open_fds",
        "process_max_fds",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "switchboard_build_info",
    ] {
        assert!(types.contains_key(wanted), "{wanted} missing");
    }
}
