//! The pages the binary serves itself: the live status page at `/`, the
//! demos at `/demo/editor` (blazing) and `/demo/channels`, and their
//! scripts and style sheets. They are embedded at compile time
//! (`include_str!`), so there is no build step, no CDN, and they work
//! offline. Every page uses the hub's public endpoints like any client:
//! the status page reads the reserved channel `$sys`.

use super::http::Response;
use crate::wire::request::ClientRequest;

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `GET /` for browsers: the status page.
    StatusPage,
    /// `GET /status.js`: the page's script.
    StatusScript,
    /// `GET /status.css`: the page's style sheet.
    StatusStyle,
    /// `GET /demo/editor`: the shared text editor (blazing).
    EditorPage,
    /// `GET /demo/editor.js`: its script.
    EditorScript,
    /// `GET /demo/channels`: listen, presence and emits (channels).
    ChannelsPage,
    /// `GET /demo/channels.js`: its script.
    ChannelsScript,
    /// `GET /demo/demo.css`: the demos' style sheet (after status.css).
    DemoStyle,
}

impl Asset {
    /// The asset at `path`, if any (`/` only for clients that take HTML).
    pub fn at(path: &str, request: &ClientRequest) -> Option<Asset> {
        match path {
            "/" if wants_html(request) => Some(Asset::StatusPage),
            "/status.js" => Some(Asset::StatusScript),
            "/status.css" => Some(Asset::StatusStyle),
            "/demo/editor" => Some(Asset::EditorPage),
            "/demo/editor.js" => Some(Asset::EditorScript),
            "/demo/channels" => Some(Asset::ChannelsPage),
            "/demo/channels.js" => Some(Asset::ChannelsScript),
            "/demo/demo.css" => Some(Asset::DemoStyle),
            _ => None,
        }
    }

    /// The file and its media type.
    fn contents(self) -> (&'static str, &'static str) {
        const HTML: &str = "text/html; charset=utf-8";
        const SCRIPT: &str = "text/javascript; charset=utf-8";
        const STYLE: &str = "text/css; charset=utf-8";
        match self {
            Asset::StatusPage => (include_str!("../web/status.html"), HTML),
            Asset::StatusScript => (include_str!("../web/status.js"), SCRIPT),
            Asset::StatusStyle => (include_str!("../web/status.css"), STYLE),
            Asset::EditorPage => (include_str!("../web/editor.html"), HTML),
            Asset::EditorScript => (include_str!("../web/editor.js"), SCRIPT),
            Asset::ChannelsPage => (include_str!("../web/channels.html"), HTML),
            Asset::ChannelsScript => (include_str!("../web/channels.js"), SCRIPT),
            Asset::DemoStyle => (include_str!("../web/demo.css"), STYLE),
        }
    }

    /// The HTTP answer serving it.
    pub fn response(self) -> Response {
        let (body, media_type) = self.contents();
        Response {
            status: 200,
            headers: vec![
                ("Content-Type", media_type.into()),
                // Small and embedded: always fresh after an upgrade.
                ("Cache-Control", "no-cache".into()),
            ],
            body: body.as_bytes().to_vec(),
            head_only: false,
        }
    }
}

/// Whether the client asks for HTML, as browsers do; curl and scripts
/// (no `Accept`, or `*/*`) keep getting the plain list of endpoints.
fn wants_html(request: &ClientRequest) -> bool {
    request
        .tokens("accept")
        .any(|t| t.split(';').next().is_some_and(|m| m.trim() == "text/html"))
}
