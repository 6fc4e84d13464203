//! Which endpoint a request is for: by path, and for WebSockets also by
//! the subprotocols the client offers.

use super::admin;
use super::pages;
use crate::dialect::{blazing, channels, concierge, Dialect};
use crate::wire::request::ClientRequest;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`: liveness.
    Health,
    /// `GET /metrics`: Prometheus counters.
    Metrics,
    /// `GET /endpoints`, or `GET /` from a client that does not take
    /// HTML: a plain text list of the endpoints.
    Index,
    /// An embedded page: `GET /` from a browser, a demo page, or their
    /// scripts and styles.
    Page(pages::Asset),
    /// `GET /demo/token`: a token for anyone, with `--demo` (404 without).
    DemoToken,
    /// A WebSocket endpoint speaking this dialect.
    WebSocket(Dialect),
    /// `GET|POST /<channel>/emit`: an HTTP publish to this channel.
    Emit(String),
    /// `POST /admin/…`: an operator's action.
    Admin(admin::Action),
    /// Nothing here.
    NotFound,
}

/// Picks the route for `request`. A WebSocket upgrade offering the
/// `ert-concierge` subprotocol is concierge whatever its path; so is `/ws`,
/// the original concierge's path.
pub fn route(request: &ClientRequest) -> Route {
    let is_upgrade = request.has_token("upgrade", "websocket");
    if is_upgrade && offers(request, concierge::SUBPROTOCOL) {
        return Route::WebSocket(Dialect::Concierge);
    }
    if let Some(asset) = pages::Asset::at(request.path(), request) {
        return Route::Page(asset);
    }
    match request.path() {
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/demo/token" => Route::DemoToken,
        "/" | "/endpoints" => Route::Index,
        "/ws/echo" => Route::WebSocket(Dialect::Echo),
        // `/ws` is where the original concierge served; its own tests and
        // bots connect there, some without offering the subprotocol.
        "/ws" | "/ws/concierge" => Route::WebSocket(Dialect::Concierge),
        "/ws/common" => Route::WebSocket(Dialect::Common),
        "/ws/blazing" => Route::WebSocket(Dialect::Blazing),
        "/admin/reload" => Route::Admin(admin::Action::Reload),
        "/admin/close-room" => Route::Admin(admin::Action::CloseRoom),
        // Unknown worlds are answered by the world dialect itself, in its
        // own words, once the WebSocket is open.
        path if path.starts_with("/ws/world/") => Route::WebSocket(Dialect::World),
        // The original blazing plugin's path, which names the computer.
        path if blazing::computer_in_path(path).is_some() => Route::WebSocket(Dialect::Blazing),
        path => match channels::split_path(path) {
            Some((_, "listen")) => Route::WebSocket(Dialect::Channels),
            Some((channel, "emit")) => Route::Emit(channel.to_string()),
            _ => Route::NotFound,
        },
    }
}

/// Whether the client lists `protocol` in `Sec-WebSocket-Protocol`.
pub fn offers(request: &ClientRequest, protocol: &str) -> bool {
    request
        .tokens("sec-websocket-protocol")
        .any(|offered| offered == protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)]) -> ClientRequest {
        ClientRequest::for_test("GET", path, headers)
    }

    #[test]
    fn paths() {
        assert_eq!(route(&request("/healthz", &[])), Route::Health);
        assert_eq!(route(&request("/metrics", &[])), Route::Metrics);
        assert_eq!(route(&request("/", &[])), Route::Index);
        assert_eq!(route(&request("/", &[("accept", "*/*")])), Route::Index);
        assert_eq!(
            route(&request("/", &[("accept", "text/html,*/*;q=0.8")])),
            Route::Page(pages::Asset::StatusPage)
        );
        assert_eq!(
            route(&request("/endpoints", &[("accept", "text/html")])),
            Route::Index
        );
        assert_eq!(
            route(&request("/$sys/listen", &[])),
            Route::WebSocket(Dialect::Channels)
        );
        assert_eq!(
            route(&request("/%24sys/emit", &[])),
            Route::Emit("$sys".into())
        );
        assert_eq!(route(&request("/$other/listen", &[])), Route::NotFound);
        assert_eq!(
            route(&request("/ws/echo", &[])),
            Route::WebSocket(Dialect::Echo)
        );
        assert_eq!(
            route(&request("/ws/concierge", &[])),
            Route::WebSocket(Dialect::Concierge)
        );
        assert_eq!(
            route(&request("/computer/01J9Z3K6Q8X2V4M7N5P0R1S2T3", &[])),
            Route::WebSocket(Dialect::Blazing)
        );
        assert_eq!(route(&request("/computer/", &[])), Route::NotFound);
        assert_eq!(
            route(&request("/ws", &[])),
            Route::WebSocket(Dialect::Concierge)
        );
        assert_eq!(route(&request("/ws/concierge/", &[])), Route::NotFound);
        assert_eq!(route(&request("/nope", &[])), Route::NotFound);
        assert_eq!(
            route(&request("/room-1.a~b_c/listen", &[])),
            Route::WebSocket(Dialect::Channels)
        );
        assert_eq!(
            route(&request("/room/emit", &[])),
            Route::Emit("room".into())
        );
        assert_eq!(
            route(&request("/ws/common", &[])),
            Route::WebSocket(Dialect::Common)
        );
        assert_eq!(
            route(&request("/ws/world/anything", &[])),
            Route::WebSocket(Dialect::World)
        );
        assert_eq!(
            route(&request("/admin/reload", &[])),
            Route::Admin(admin::Action::Reload)
        );
        assert_eq!(route(&request("/demo/token", &[])), Route::DemoToken);
        assert_eq!(
            route(&request("/demo/editor", &[])),
            Route::Page(pages::Asset::EditorPage)
        );
        assert_eq!(
            route(&request("/demo/listen", &[])),
            Route::WebSocket(Dialect::Channels)
        );
        assert_eq!(route(&request("/room/other", &[])), Route::NotFound);
        assert_eq!(route(&request("/ro%20om/listen", &[])), Route::NotFound);
        assert_eq!(route(&request("//listen", &[])), Route::NotFound);
        assert_eq!(route(&request("/a/b/listen", &[])), Route::NotFound);
    }

    #[test]
    fn concierge_subprotocol_wins_on_any_path_but_only_for_upgrades() {
        let offer = [
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "chat, ert-concierge"),
        ];
        assert_eq!(
            route(&request("/anything", &offer)),
            Route::WebSocket(Dialect::Concierge)
        );
        assert_eq!(
            route(&request("/ws/echo", &offer)),
            Route::WebSocket(Dialect::Concierge)
        );
        assert_eq!(route(&request("/anything", &offer[1..])), Route::NotFound);
        let other = [
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "ert-concierge-v2"),
        ];
        assert_eq!(route(&request("/anything", &other)), Route::NotFound);
    }
}
