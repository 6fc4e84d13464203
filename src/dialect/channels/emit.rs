//! `GET|POST /<channel>/emit`: publishing to a channel over plain HTTP.
//!
//! The payload is the JSON body of a POST, or else the query parameters
//! (other than `clients` and `require-ack`) as an object of strings. The
//! request goes to the router as a [`Command::Emit`] carrying a one-slot
//! channel; this thread then waits on that channel for the answer (at
//! once, or once the ACKs are in or overdue), while the router goes on.
//!
//! On a protected hub the emitter shows `Authorization: Bearer` with the
//! operator's `--emit-token` (every channel) or an HS256 token whose
//! `publish` claim grants the channel; the router's one access rule
//! decides, and a refusal is 401 (no or bad credentials) or 403.

use std::fmt;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::auth::secrets_match;
use crate::config::Config;
use crate::dialect::credentials::{self, Refusal};
use crate::log;
use crate::net::http::{query_pairs, read_body, BodyError, Request, Response};
use crate::net::Shared;
use crate::router::{Command, Denial, Emit, EmitError, EmitOutcome, Grant, Patterns, Targets};

/// How much longer than the ack timeout the HTTP thread waits for the
/// router before answering 500 itself.
const ROUTER_GRACE: Duration = Duration::from_secs(10);

/// Answers an emit request to `channel` from `client` (for the log).
pub(crate) fn answer(
    stream: &TcpStream,
    request: &Request,
    channel: &str,
    shared: &Shared,
    (deadline, client): (Instant, &dyn fmt::Display),
) -> Response {
    match emit(stream, request, channel, shared, deadline) {
        Ok(response) | Err(Refused::Invalid(response)) => response,
        Err(Refused::Access(refusal)) => {
            shared.metrics.access_denied("http", refusal.label());
            log::info!("{client}: emit to {channel:?} refused: {refusal}");
            match refusal {
                Refusal::NotGranted(_) if crate::router::sys::is_reserved(channel) => error(
                    403,
                    "RESERVED_CHANNEL",
                    &format!("{channel} is reserved: only the server publishes to it (listen at /{channel}/listen)"),
                ),
                refusal => error(refusal.status(), refusal.code(), &refusal.to_string()),
            }
        }
    }
}

/// Why an emit was not sent: a bad request (answered as it is), or the
/// access rules (counted and logged first).
enum Refused {
    Invalid(Response),
    Access(Refusal),
}

impl From<Response> for Refused {
    fn from(response: Response) -> Refused {
        Refused::Invalid(response)
    }
}

/// What the emitter's credentials grant, and whether it showed any. On an
/// open hub they are not looked at.
fn emitter(request: &Request, config: &Config) -> Result<(Grant, bool), Refusal> {
    if !config.protected() {
        return Ok((Grant::anonymous(), false));
    }
    let Some(token) = credentials::bearer(request) else {
        return Ok((Grant::anonymous(), false));
    };
    let operator = config
        .emit_token
        .as_deref()
        .is_some_and(|key| secrets_match(token.as_bytes(), key.as_bytes()));
    if operator {
        let every_channel = Grant {
            read: Patterns::none(),
            write: Patterns::everything(),
        };
        return Ok((every_channel, true));
    }
    let claims = credentials::verify(&token, config).map_err(Refusal::BadToken)?;
    Ok((credentials::token_grant(&claims), true))
}

fn emit(
    stream: &TcpStream,
    request: &Request,
    channel: &str,
    shared: &Shared,
    deadline: Instant,
) -> Result<Response, Refused> {
    if request.method != "GET" && request.method != "POST" {
        return Err(error(405, "METHOD_NOT_ALLOWED", "emit takes GET or POST")
            .with_header("Allow", "GET, POST")
            .into());
    }
    let config = shared.config();
    let (grant, credentialed) = emitter(request, &config).map_err(Refused::Access)?;
    let mut targets = Targets::All;
    let mut require_ack = false;
    let mut params = serde_json::Map::new();
    for (key, value) in query_pairs(request.query.as_deref().unwrap_or("")) {
        match key.as_str() {
            "clients" => targets = parse_targets(&value)?,
            "require-ack" => require_ack = parse_flag(&value)?,
            // A credential, not part of the payload.
            "token" => {}
            _ => {
                params.insert(key, Value::String(value));
            }
        }
    }
    let body = match request.method.as_str() {
        "POST" => {
            read_body(stream, request, config.max_message_bytes, deadline).map_err(body_error)?
        }
        _ => Vec::new(),
    };
    let payload = payload(&body, params)?;
    let (reply, answer) = crossbeam_channel::bounded(1);
    let command = Command::Emit(Emit {
        topic: channel.to_string(),
        payload,
        targets,
        require_ack,
        reply,
        grant,
    });
    shared.metrics.emits.increment();
    if shared.router.send(command).is_err() {
        return Err(error(503, "UNAVAILABLE", "the router has stopped").into());
    }
    match answer.recv_timeout(config.ack_timeout + ROUTER_GRACE) {
        Ok(EmitOutcome::Refused(EmitError::Denied(denial))) => {
            Err(Refused::Access(match (denial, credentialed) {
                (_, true) | (Denial::Reserved, false) => Refusal::NotGranted(channel.to_string()),
                (Denial::NotGranted, false) => Refusal::NoToken,
            }))
        }
        Ok(outcome) => Ok(respond(outcome)),
        Err(_) => Err(error(500, "INTERNAL_ERROR", "the router did not answer").into()),
    }
}

/// The payload: a POST's JSON body, or else the other query parameters.
fn payload(body: &[u8], params: serde_json::Map<String, Value>) -> Result<Box<RawValue>, Response> {
    let body = std::str::from_utf8(body)
        .map_err(|_| error(400, "INVALID_JSON", "the body is not UTF-8"))?;
    let text = match (body.trim().is_empty(), params.is_empty()) {
        (false, _) => body.to_string(),
        (true, false) => Value::Object(params).to_string(),
        (true, true) => {
            return Err(error(
                400,
                "NO_PAYLOAD",
                "send a JSON body or query parameters to emit",
            ))
        }
    };
    RawValue::from_string(text)
        .map_err(|e| error(400, "INVALID_JSON", &format!("the body is not JSON: {e}")))
}

/// `clients=N` (N ≥ 1) or `clients=id1,id2`.
fn parse_targets(value: &str) -> Result<Targets, Response> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Targets::Random(n)),
            _ => Err(error(
                400,
                "INVALID_CLIENTS",
                "clients=N needs N of at least 1",
            )),
        };
    }
    let ids: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(String::from)
        .collect();
    if ids.is_empty() {
        return Err(error(
            400,
            "INVALID_CLIENTS",
            "clients= needs a number or client ids",
        ));
    }
    Ok(Targets::Named(ids))
}

fn parse_flag(value: &str) -> Result<bool, Response> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(error(
            400,
            "INVALID_REQUIRE_ACK",
            "require-ack is true or false",
        )),
    }
}

fn body_error(error_kind: BodyError) -> Response {
    match error_kind {
        BodyError::TooLarge => error(
            413,
            "PAYLOAD_TOO_LARGE",
            "the body is larger than --max-message-bytes",
        ),
        BodyError::LengthRequired => error(
            411,
            "LENGTH_REQUIRED",
            "send the body with a Content-Length",
        ),
        BodyError::BadLength => error(400, "INVALID_LENGTH", "Content-Length must be one number"),
        BodyError::Incomplete => error(400, "INCOMPLETE_BODY", "the body did not arrive in time"),
    }
}

/// The HTTP answer to the router's outcome.
fn respond(outcome: EmitOutcome) -> Response {
    match outcome {
        EmitOutcome::Sent { event_id, targeted } => Response::json(
            200,
            &json!({"eventID": event_id, "targeted": targeted.len(), "clients": targeted}),
        ),
        EmitOutcome::Acked {
            event_id,
            targeted,
            acked,
        } => Response::json(
            200,
            &json!({"eventID": event_id, "targeted": targeted.len(), "clients": targeted, "acked": acked}),
        ),
        EmitOutcome::Unacked {
            event_id,
            targeted,
            acked,
            missing,
        } => Response::json(
            408,
            &json!({
                "error": "not every client acknowledged in time",
                "code": "ACK_TIMEOUT",
                "eventID": event_id,
                "targeted": targeted.len(),
                "clients": targeted,
                "acked": acked,
                "missing": missing,
            }),
        ),
        EmitOutcome::Refused(refusal) => {
            let status = match refusal {
                EmitError::Internal(_) => 500,
                EmitError::TooFewListeners { .. } | EmitError::UnknownClients(_) => 400,
                // Answered by `emit` with 401 or 403; kept for completeness.
                EmitError::Denied(_) => 403,
            };
            let code = match &refusal {
                EmitError::TooFewListeners { .. } => "NOT_ENOUGH_CLIENTS",
                EmitError::UnknownClients(_) => "UNKNOWN_CLIENTS",
                EmitError::Internal(_) => "INTERNAL_ERROR",
                EmitError::Denied(_) => "FORBIDDEN",
            };
            error(status, code, &refusal.to_string())
        }
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(status, &json!({"error": message, "code": code}))
}
