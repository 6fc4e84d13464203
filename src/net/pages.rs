//! The pages the binary serves itself: the live status page at `/` and
//! its script and style sheet. They are embedded at compile time
//! (`include_str!`), so there is no build step, no CDN, and they work
//! offline. The page reads the reserved channel `$sys` like any client.

use super::http::{Request, Response};

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `GET /` for browsers: the status page.
    StatusPage,
    /// `GET /status.js`: the page's script.
    StatusScript,
    /// `GET /status.css`: the page's style sheet.
    StatusStyle,
}

impl Asset {
    /// The asset at `path`, if any (`/` only for clients that take HTML).
    pub fn at(path: &str, request: &Request) -> Option<Asset> {
        match path {
            "/" if wants_html(request) => Some(Asset::StatusPage),
            "/status.js" => Some(Asset::StatusScript),
            "/status.css" => Some(Asset::StatusStyle),
            _ => None,
        }
    }

    /// The file and its media type.
    fn contents(self) -> (&'static str, &'static str) {
        match self {
            Asset::StatusPage => (
                include_str!("../web/status.html"),
                "text/html; charset=utf-8",
            ),
            Asset::StatusScript => (
                include_str!("../web/status.js"),
                "text/javascript; charset=utf-8",
            ),
            Asset::StatusStyle => (include_str!("../web/status.css"), "text/css; charset=utf-8"),
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
        }
    }
}

/// Whether the client asks for HTML, as browsers do; curl and scripts
/// (no `Accept`, or `*/*`) keep getting the plain list of endpoints.
fn wants_html(request: &Request) -> bool {
    request
        .tokens("accept")
        .any(|t| t.split(';').next().is_some_and(|m| m.trim() == "text/html"))
}
