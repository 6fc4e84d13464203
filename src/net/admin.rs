//! Operator endpoints, behind a bearer token (`--admin-token`):
//! `POST /admin/reload[?world=W]` sends world clients `connection.reload`.

use std::time::Duration;

use serde_json::json;

use super::http::{query_pairs, Request, Response};
use super::Shared;
use crate::auth::secrets_match;
use crate::router::Command;

/// How long the endpoint waits for the router's count.
const ROUTER_WAIT: Duration = Duration::from_secs(5);

/// Answers `POST /admin/reload`.
pub(crate) fn reload(request: &Request, shared: &Shared) -> Response {
    let Some(expected) = &shared.config.admin_token else {
        return Response::text(404, "admin endpoints are off: start with --admin-token\n");
    };
    if request.method != "POST" {
        return Response::text(405, "POST only\n").with_header("Allow", "POST");
    }
    let offered = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if !secrets_match(offered.trim().as_bytes(), expected.as_bytes()) {
        return Response::text(401, "a valid bearer token is required\n")
            .with_header("WWW-Authenticate", "Bearer");
    }
    let world = query_pairs(request.query.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(key, _)| key == "world")
        .map(|(_, world)| world);
    let (reply, told) = crossbeam_channel::bounded(1);
    let command = Command::Reload {
        world: world.clone(),
        reply,
    };
    if shared.router.send(command).is_err() {
        return Response::text(503, "the router has stopped\n");
    }
    match told.recv_timeout(ROUTER_WAIT) {
        Ok(count) => Response::json(200, &json!({"world": world, "told": count})),
        Err(_) => Response::text(500, "the router did not answer\n"),
    }
}
