//! Operator endpoints, behind a bearer token (`--admin-token`):
//! - `POST /admin/reload[?world=W]` sends world clients `connection.reload`;
//! - `POST /admin/close-room?computer=C` closes a blazing document's room
//!   (its clients get 1000, "room closed by admin").

use std::time::Duration;

use serde_json::json;

use crate::log;

use super::http::Response;
use super::Context;
use crate::auth::secrets_match;
use crate::router::{Command, Control};
use crate::wire::request::ClientRequest;

/// How long an endpoint waits for the router's count.
const ROUTER_WAIT: Duration = Duration::from_secs(5);

/// An operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /admin/reload`.
    Reload,
    /// `POST /admin/close-room`.
    CloseRoom,
}

/// Answers an admin endpoint: `{"world" or "computer": …, "told": n}`,
/// n being how many clients were told.
pub(crate) fn answer(action: Action, request: &ClientRequest, context: &Context) -> Response {
    if let Err(refusal) = authorize(request, context) {
        // Refusals of the operator's endpoints are worth an operator's look.
        log::info!(
            "admin: {} {} refused: status={}",
            request.method(),
            request.path(),
            refusal.status
        );
        return refusal;
    }
    let param = |name: &str| request.query_param(name);
    let (reply, told) = crossbeam_channel::bounded(1);
    let (command, subject) = match action {
        Action::Reload => {
            let world = param("world");
            (
                Command::Control(Control::Reload {
                    world: world.clone(),
                    reply,
                }),
                ("world", world),
            )
        }
        Action::CloseRoom => {
            let Some(computer) = param("computer") else {
                return Response::text(400, "name the room: ?computer=<id>\n");
            };
            let command = Command::Control(Control::CloseRoom {
                computer: computer.clone(),
                reply,
            });
            (command, ("computer", Some(computer)))
        }
    };
    if context.router.send(command).is_err() {
        return Response::text(503, "the router has stopped\n");
    }
    match told.recv_timeout(ROUTER_WAIT) {
        Ok(count) => {
            log::info!(
                "admin: {} {}={} told={count}",
                request.path(),
                subject.0,
                subject.1.as_deref().unwrap_or("(all)")
            );
            let mut body = serde_json::Map::new();
            body.insert(subject.0.to_string(), json!(subject.1));
            body.insert("told".to_string(), json!(count));
            Response::json(200, &serde_json::Value::Object(body))
        }
        Err(_) => Response::text(500, "the router did not answer\n"),
    }
}

/// `POST` with `Authorization: Bearer <--admin-token>`, else the refusal.
fn authorize(request: &ClientRequest, context: &Context) -> Result<(), Response> {
    let Some(expected) = &context.config().admin_token else {
        return Err(Response::text(
            404,
            "admin endpoints are off: start with --admin-token\n",
        ));
    };
    if request.method() != "POST" {
        return Err(Response::text(405, "POST only\n").with_header("Allow", "POST"));
    }
    let offered = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if !secrets_match(offered.trim().as_bytes(), expected.as_bytes()) {
        return Err(Response::text(401, "a valid bearer token is required\n")
            .with_header("WWW-Authenticate", "Bearer"));
    }
    Ok(())
}
