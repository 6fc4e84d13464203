//! The one list of endpoints, printed everywhere: by `GET /` for clients
//! that are not browsers (and `GET /endpoints`), by the start banner, and
//! by `--help`. A new endpoint is added here once.

/// How an endpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A WebSocket upgrade (`ws://`).
    WebSocket,
    /// A plain HTTP request (`http://`).
    Http,
}

/// One endpoint: how, where, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// WebSocket or plain HTTP.
    pub scheme: Scheme,
    /// The methods it answers (`GET`, `GET|POST`, `POST`).
    pub methods: &'static str,
    /// The path, with `<placeholders>`.
    pub path: &'static str,
    /// What it is, in a few words.
    pub what: &'static str,
}

const fn ws(path: &'static str, what: &'static str) -> Endpoint {
    Endpoint {
        scheme: Scheme::WebSocket,
        methods: "GET",
        path,
        what,
    }
}

const fn http(methods: &'static str, path: &'static str, what: &'static str) -> Endpoint {
    Endpoint {
        scheme: Scheme::Http,
        methods,
        path,
        what,
    }
}

/// Every endpoint, dialects first.
pub const ENDPOINTS: &[Endpoint] = &[
    ws(
        "/ws/concierge",
        "concierge (also /ws, or any path offering subprotocol ert-concierge)",
    ),
    ws("/<channel>/listen", "channels listener"),
    http("GET|POST", "/<channel>/emit", "channels publish"),
    ws("/ws/common", "common"),
    ws("/ws/world/<world>", "world (one per --world)"),
    ws(
        "/ws/blazing",
        "blazing (headers, or ?token=JWT&computer=ID; also /computer/ID)",
    ),
    ws("/ws/echo", "echo (for conformance suites)"),
    ws(
        "/$sys/listen",
        "status snapshots every second (channels, read-only)",
    ),
    http(
        "GET",
        "/",
        "live status page in a browser; this list otherwise",
    ),
    http("GET", "/endpoints", "this list"),
    http("GET", "/healthz", "liveness"),
    http("GET", "/metrics", "Prometheus metrics"),
    http(
        "GET",
        "/demo/editor",
        "demo: a shared text editor (blazing; joins with --demo)",
    ),
    http(
        "GET",
        "/demo/channels",
        "demo: listen, presence and emits (channels)",
    ),
    http(
        "GET",
        "/demo/token",
        "demo: a token for anyone (only with --demo)",
    ),
    http(
        "POST",
        "/admin/reload",
        "tell world clients to reload (--admin-token)",
    ),
    http(
        "POST",
        "/admin/close-room",
        "close a blazing document's room (--admin-token)",
    ),
];

impl Endpoint {
    /// `GET|POST /<channel>/emit`, aligned for a list.
    pub fn request_line(&self) -> String {
        format!("{} {}", self.methods, self.path)
    }

    /// The URL on a server at `addr` (`ws://127.0.0.1:8080/ws/common`).
    pub fn url(&self, addr: impl std::fmt::Display) -> String {
        let scheme = match self.scheme {
            Scheme::WebSocket => "ws",
            Scheme::Http => "http",
        };
        format!("{scheme}://{addr}{}", self.path)
    }
}

/// `url` as a server speaking TLS serves it: `wss://` for `ws://`,
/// `https://` for `http://`.
pub fn over_tls(url: &str) -> String {
    match url.split_once("://") {
        Some(("ws", rest)) => format!("wss://{rest}"),
        Some(("http", rest)) => format!("https://{rest}"),
        _ => url.to_string(),
    }
}

/// The list as `GET /endpoints` writes it: one aligned line per endpoint.
pub fn list() -> String {
    let width = ENDPOINTS
        .iter()
        .map(|e| e.request_line().len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("switchboard\n\nendpoints:\n");
    for endpoint in ENDPOINTS {
        let line = endpoint.request_line();
        text += &format!("  {line:<width$}  {}\n", endpoint.what);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_have_the_secure_schemes() {
        assert_eq!(over_tls("ws://h:1/ws/common"), "wss://h:1/ws/common");
        assert_eq!(over_tls("http://h:1/metrics  x"), "https://h:1/metrics  x");
        assert_eq!(over_tls("wss://h/x"), "wss://h/x");
    }

    #[test]
    fn every_route_is_listed_and_every_listed_path_is_routed() {
        use super::super::route::{route, Route};
        use crate::wire::request::ClientRequest;
        for endpoint in ENDPOINTS {
            let path = endpoint
                .path
                .replace("<channel>", "room")
                .replace("<world>", "default");
            let method = endpoint.methods.split('|').next().unwrap_or("GET");
            let request = ClientRequest::for_test(method, &path, &[("upgrade", "websocket")]);
            assert_ne!(route(&request), Route::NotFound, "{}", endpoint.path);
        }
    }

    #[test]
    fn the_list_is_aligned() {
        let list = list();
        let columns: Vec<usize> = list
            .lines()
            .filter(|l| l.starts_with("  "))
            .map(|l| {
                l.len()
                    - l[2..]
                        .split("  ")
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_start()
                        .len()
            })
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{list}");
        assert!(list.contains("/ws/world/<world>"), "{list}");
        assert!(list.contains("/ws/common"), "{list}");
    }
}
