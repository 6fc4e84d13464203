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
//!
//! Where the document is silent this follows the original server
//! (websockets.do), so that its emitters work unmodified: answers carry
//! its `"success"`, an empty `clients=` is no targeting, `clients=-N` is
//! N, ids that do not listen are skipped (and named), and any
//! `require-ack` value but a false one asks for ACKs.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::auth::secrets_match;
use crate::config::Config;
use crate::dialect::credentials::{self, Refusal};
use crate::log;
use crate::net::http::{read_body, BodyError, Response};
use crate::net::stream::Stream;
use crate::net::Context;
use crate::router::{Command, Denial, Emit, EmitError, EmitOutcome, Grant, Patterns, Targets};
use crate::wire::request::{query_pairs, ClientRequest};

/// How much longer than the ack timeout the HTTP thread waits for the
/// router before answering 500 itself.
const ROUTER_GRACE: Duration = Duration::from_secs(10);

/// Answers an emit request to `channel` from `client` (for the log).
pub(crate) fn answer(
    stream: &Stream,
    request: &ClientRequest,
    channel: &str,
    shared: &Context,
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
fn emitter(request: &ClientRequest, config: &Config) -> Result<(Grant, bool), Refusal> {
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
    stream: &Stream,
    request: &ClientRequest,
    channel: &str,
    shared: &Context,
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
            "require-ack" => require_ack = parse_flag(&value),
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
    shared.metrics.emits.increment();
    // Ids that do not listen to the channel are skipped, as the original
    // server skipped them: the router refuses a list naming any (so that
    // nothing goes to a list the emitter did not mean), and the emit is
    // asked again without them. Each refusal removes at least one id and
    // an empty list is never refused, so this ends.
    let mut skipped: Vec<String> = Vec::new();
    let outcome = loop {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let command = Command::Emit(Emit {
            topic: channel.to_string(),
            payload: payload.clone(),
            targets: targets.clone(),
            require_ack,
            reply,
            grant: grant.clone(),
        });
        if shared.router.send(command).is_err() {
            return Err(error(503, "UNAVAILABLE", "the router has stopped").into());
        }
        match (
            answer.recv_timeout(config.ack_timeout + ROUTER_GRACE),
            &mut targets,
        ) {
            (Ok(EmitOutcome::Refused(EmitError::UnknownClients(unknown))), Targets::Named(ids)) => {
                ids.retain(|id| !unknown.contains(id));
                for id in unknown {
                    if !skipped.contains(&id) {
                        skipped.push(id);
                    }
                }
            }
            (Ok(outcome), _) => break outcome,
            (Err(_), _) => {
                return Err(error(500, "INTERNAL_ERROR", "the router did not answer").into())
            }
        }
    };
    match outcome {
        EmitOutcome::Refused(EmitError::Denied(denial)) => {
            Err(Refused::Access(match (denial, credentialed) {
                (_, true) | (Denial::Reserved, false) => Refusal::NotGranted(channel.to_string()),
                (Denial::NotGranted, false) => Refusal::NoToken,
            }))
        }
        outcome => Ok(respond(outcome, skipped)),
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

/// `clients=N` (N ≥ 1) or `clients=id1,id2`. As in the original server,
/// `-N` is N (it took the absolute value), and an empty value or list is
/// no targeting at all (it ignored one). `clients=0` asks for nobody, which
/// the original answered by sending to everyone: refused instead.
fn parse_targets(value: &str) -> Result<Targets, Response> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: parsing fails only on overflow, and a number too
        // large to hold is more than the listeners there are.
        return match digits.parse::<usize>().unwrap_or(usize::MAX) {
            0 => Err(error(
                400,
                "INVALID_CLIENTS",
                "clients=N needs N of at least 1",
            )),
            n => Ok(Targets::Random(n)),
        };
    }
    let ids: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(String::from)
        .collect();
    Ok(match ids.is_empty() {
        true => Targets::All,
        false => Targets::Named(ids),
    })
}

/// `require-ack`: the document shows `true`; the original server asked
/// for ACKs on any non-empty value. So does this, but for the values that
/// say no (`false`, `0`, `no`, `off`, in any case): the original's
/// `require-ack=false` asking for ACKs was JavaScript truthiness, and it
/// answered success even without them, where this answers 408.
fn parse_flag(value: &str) -> bool {
    let no = ["", "false", "0", "no", "off"];
    !no.iter()
        .any(|word| value.trim().eq_ignore_ascii_case(word))
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

/// The HTTP answer to the router's outcome; `skipped` are the ids of
/// `clients=` that do not listen to the channel (named as `unknown`).
/// `success` is the original server's whole answer, kept for its clients.
fn respond(outcome: EmitOutcome, skipped: Vec<String>) -> Response {
    let (status, mut body) = match outcome {
        EmitOutcome::Sent { event_id, targeted } => (
            200,
            json!({"success": true, "eventID": event_id, "targeted": targeted.len(), "clients": targeted}),
        ),
        EmitOutcome::Acked {
            event_id,
            targeted,
            acked,
        } => (
            200,
            json!({"success": true, "eventID": event_id, "targeted": targeted.len(), "clients": targeted, "acked": acked}),
        ),
        EmitOutcome::Unacked {
            event_id,
            targeted,
            acked,
            missing,
        } => (
            408,
            json!({
                "success": false,
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
            return error(status, code, &refusal.to_string());
        }
    };
    if !skipped.is_empty() {
        body["unknown"] = json!(skipped);
    }
    Response::json(status, &body)
}

/// An error answer: the original server's `success` and `error`, and a code.
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"success": false, "error": message, "code": code}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(value: &str) -> u16 {
        match parse_targets(value) {
            Err(response) => response.status,
            Ok(targets) => panic!("{value:?} gave {targets:?}"),
        }
    }

    #[test]
    fn clients_is_a_number_a_list_or_nothing() {
        let targets = |value: &str| parse_targets(value).unwrap();
        assert_eq!(targets("3"), Targets::Random(3));
        // The original took the absolute value.
        assert_eq!(targets("-2"), Targets::Random(2));
        assert_eq!(
            targets("99999999999999999999999"),
            Targets::Random(usize::MAX)
        );
        assert_eq!(
            targets("client_a, client_b,,"),
            Targets::Named(vec!["client_a".into(), "client_b".into()])
        );
        // An empty value or list: the original ignored it.
        for value in ["", ",", " , "] {
            assert_eq!(targets(value), Targets::All, "{value:?}");
        }
        for value in ["0", "00", "-0"] {
            assert_eq!(refused(value), 400, "{value:?}");
        }
        // Not a number: ids, however odd.
        assert_eq!(targets("-"), Targets::Named(vec!["-".into()]));
        assert_eq!(targets("1e3"), Targets::Named(vec!["1e3".into()]));
    }

    #[test]
    fn require_ack_is_true_but_for_the_values_that_say_no() {
        for value in ["true", "TRUE", "True", "1", "yes", "on", "2", "maybe"] {
            assert!(parse_flag(value), "{value:?}");
        }
        for value in ["", "false", "FALSE", "False", "0", "no", "off", " false "] {
            assert!(!parse_flag(value), "{value:?}");
        }
    }

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).expect("a JSON answer")
    }

    #[test]
    fn answers_carry_success_and_name_skipped_ids() {
        let sent = EmitOutcome::Sent {
            event_id: "evt_1".into(),
            targeted: vec!["client_a".into()],
        };
        let response = respond(sent.clone(), Vec::new());
        assert_eq!(response.status, 200);
        assert_eq!(
            body(&response),
            json!({"success": true, "eventID": "evt_1", "targeted": 1, "clients": ["client_a"]})
        );
        let response = respond(sent, vec!["client_x".into()]);
        assert_eq!(body(&response)["unknown"], json!(["client_x"]));
        let unacked = EmitOutcome::Unacked {
            event_id: "evt_1".into(),
            targeted: vec!["client_a".into()],
            acked: Vec::new(),
            missing: vec!["client_a".into()],
        };
        let response = respond(unacked, Vec::new());
        assert_eq!(response.status, 408);
        assert_eq!(body(&response)["success"], false);
        let refused = respond(
            EmitOutcome::Refused(EmitError::TooFewListeners {
                wanted: 2,
                listening: 1,
            }),
            Vec::new(),
        );
        assert_eq!(refused.status, 400);
        let refused = body(&refused);
        assert_eq!(refused["success"], false);
        assert_eq!(refused["code"], "NOT_ENOUGH_CLIENTS");
    }
}
