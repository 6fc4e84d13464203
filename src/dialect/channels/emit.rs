//! `GET|POST /<channel>/emit`: publishing to a channel over plain HTTP,
//! the protocol half. From the request head and body to the router's
//! command, and from the router's outcome to the answer's status and JSON,
//! with no I/O: `net::emit` reads the body, waits on the router and writes
//! the response, calling these in order ([`read_head`],
//! [`Asked::with_body`], then [`Emission::command`] and
//! [`Emission::settle`] until the emit is settled).
//!
//! The payload is the JSON body of a POST, or else the query parameters
//! (other than `clients` and `require-ack`) as an object of strings. The
//! request goes to the router as a [`Command::Emit`] carrying a one-slot
//! channel; the HTTP thread then waits on that channel for the answer (at
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

use crossbeam_channel::Sender;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::auth::secrets_match;
use crate::config::Config;
use crate::dialect::credentials::{self, Refusal};
use crate::router::{Command, Denial, Emit, EmitError, EmitOutcome, Grant, Patterns, Targets};
use crate::wire::request::{query_pairs, BodyError, ClientRequest};

/// The methods the endpoint takes, as a 405's `Allow` lists them.
const METHODS: &str = "GET, POST";

/// The endpoint's answer: an HTTP status and its JSON body, which `net`
/// writes as the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// The methods for an `Allow` header: a 405 says which it takes.
    pub allow: Option<&'static str>,
}

/// Why an emit was not sent: a bad request (answered as it is), or the
/// access rules (counted and logged by `net` first, then answered with
/// [`refused`]).
#[derive(Debug)]
pub enum Refused {
    /// The request is wrong, and this is the answer.
    Invalid(Answer),
    /// The emitter may not publish to the channel.
    Access(Refusal),
}

impl From<Answer> for Refused {
    fn from(answer: Answer) -> Refused {
        Refused::Invalid(answer)
    }
}

/// What an emit request asks, read from its head before any body is.
#[derive(Debug)]
pub struct Asked {
    channel: String,
    grant: Grant,
    /// Whether the emitter showed credentials (a refusal is then 403, not 401).
    credentialed: bool,
    targets: Targets,
    require_ack: bool,
    /// The query parameters that are the payload when there is no body.
    params: serde_json::Map<String, Value>,
    /// A POST: its body is the payload.
    wants_body: bool,
}

/// Reads an emit to `channel` from the request head: the method, the
/// emitter's credentials and the query string.
pub fn read_head(
    request: &ClientRequest,
    channel: &str,
    config: &Config,
) -> Result<Asked, Refused> {
    if request.method() != "GET" && request.method() != "POST" {
        let wrong = error(405, "METHOD_NOT_ALLOWED", "emit takes GET or POST");
        return Err(Answer {
            allow: Some(METHODS),
            ..wrong
        }
        .into());
    }
    let (grant, credentialed) = emitter(request, config).map_err(Refused::Access)?;
    let mut targets = Targets::All;
    let mut require_ack = false;
    let mut params = serde_json::Map::new();
    for (key, value) in query_pairs(request.query().unwrap_or("")) {
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
    Ok(Asked {
        channel: channel.to_string(),
        grant,
        credentialed,
        targets,
        require_ack,
        params,
        wants_body: request.method() == "POST",
    })
}

impl Asked {
    /// Whether the payload is a body, to be read before [`Asked::with_body`]
    /// (a POST; a GET's payload is its query).
    pub fn wants_body(&self) -> bool {
        self.wants_body
    }

    /// The emit, once its `body` is in (empty for a GET); a payload that is
    /// missing or not JSON is answered 400.
    pub fn with_body(self, body: &[u8]) -> Result<Emission, Answer> {
        Ok(Emission {
            payload: payload(body, self.params)?,
            channel: self.channel,
            grant: self.grant,
            credentialed: self.credentialed,
            targets: self.targets,
            require_ack: self.require_ack,
            skipped: Vec::new(),
        })
    }
}

/// An emit on its way to the router, asked again without the ids that do
/// not listen until the router settles it.
#[derive(Debug)]
pub struct Emission {
    channel: String,
    payload: Box<RawValue>,
    targets: Targets,
    require_ack: bool,
    grant: Grant,
    credentialed: bool,
    /// The ids of `clients=` that do not listen, named in the answer.
    skipped: Vec<String>,
}

impl Emission {
    /// The router's command for the emit as it now stands, answered on
    /// `reply`.
    pub fn command(&self, reply: Sender<EmitOutcome>) -> Command {
        Command::Emit(Box::new(Emit {
            topic: self.channel.clone(),
            payload: self.payload.clone(),
            targets: self.targets.clone(),
            require_ack: self.require_ack,
            reply,
            grant: self.grant.clone(),
        }))
    }

    /// What the router's `outcome` means: `None` to ask again, or the
    /// answer (or the access refusal).
    ///
    /// Ids that do not listen to the channel are skipped, as the original
    /// server skipped them: the router refuses a list naming any (so that
    /// nothing goes to a list the emitter did not mean), and the emit is
    /// asked again without them. Each refusal removes at least one id and
    /// an empty list is never refused, so this ends.
    pub fn settle(&mut self, outcome: EmitOutcome) -> Option<Result<Answer, Refused>> {
        match (outcome, &mut self.targets) {
            (EmitOutcome::Refused(EmitError::UnknownClients(unknown)), Targets::Named(ids)) => {
                ids.retain(|id| !unknown.contains(id));
                for id in unknown {
                    if !self.skipped.contains(&id) {
                        self.skipped.push(id);
                    }
                }
                None
            }
            (EmitOutcome::Refused(EmitError::Denied(denial)), _) => {
                let refusal = match (denial, self.credentialed) {
                    (_, true) | (Denial::Reserved, false) => {
                        Refusal::NotGranted(self.channel.clone())
                    }
                    (Denial::NotGranted, false) => Refusal::NoToken,
                };
                Some(Err(Refused::Access(refusal)))
            }
            (outcome, _) => Some(Ok(respond(outcome, std::mem::take(&mut self.skipped)))),
        }
    }
}

/// The answer to an emit to `channel` that the access rules refused.
pub fn refused(channel: &str, refusal: Refusal) -> Answer {
    match refusal {
        Refusal::NotGranted(_) if crate::router::sys::is_reserved(channel) => error(
            403,
            "RESERVED_CHANNEL",
            &format!("{channel} is reserved: only the server publishes to it (listen at /{channel}/listen)"),
        ),
        refusal => error(refusal.status(), refusal.code(), &refusal.to_string()),
    }
}

/// The answer when the router's command channel is closed.
pub fn router_stopped() -> Answer {
    error(503, "UNAVAILABLE", "the router has stopped")
}

/// The answer when the router did not settle the emit in time.
pub fn router_silent() -> Answer {
    error(500, "INTERNAL_ERROR", "the router did not answer")
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

/// The payload: a POST's JSON body, or else the other query parameters.
fn payload(body: &[u8], params: serde_json::Map<String, Value>) -> Result<Box<RawValue>, Answer> {
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
fn parse_targets(value: &str) -> Result<Targets, Answer> {
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

/// The answer to a body that could not be read.
pub fn body_refused(error_kind: &BodyError) -> Answer {
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
fn respond(outcome: EmitOutcome, skipped: Vec<String>) -> Answer {
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
                // Answered by `Emission::settle` with 401 or 403; kept for
                // completeness.
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
    Answer {
        status,
        body,
        allow: None,
    }
}

/// An error answer: the original server's `success` and `error`, and a code.
fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer {
        status,
        body: json!({"success": false, "error": message, "code": code}),
        allow: None,
    }
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

    fn body(answer: &Answer) -> Value {
        answer.body.clone()
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

    fn request(method: &str, query: &str) -> ClientRequest {
        ClientRequest::for_test(method, &format!("/room/emit?{query}"), &[])
    }

    fn asked(method: &str, query: &str) -> Asked {
        match read_head(&request(method, query), "room", &Config::default()) {
            Ok(asked) => asked,
            Err(refused) => panic!("{method} ?{query} refused: {refused:?}"),
        }
    }

    #[test]
    fn the_head_says_the_method_targets_and_where_the_payload_is() {
        match read_head(&request("PUT", ""), "room", &Config::default()) {
            Err(Refused::Invalid(answer)) => {
                assert_eq!((answer.status, answer.allow), (405, Some("GET, POST")));
            }
            other => panic!("PUT gave {other:?}"),
        }
        let get = asked("GET", "clients=a,b&require-ack=1&token=t&text=hi");
        assert!(!get.wants_body());
        assert_eq!(get.targets, Targets::Named(vec!["a".into(), "b".into()]));
        assert!(get.require_ack);
        // The token is a credential, not payload.
        let emission = get.with_body(b"").expect("the query is the payload");
        assert_eq!(emission.payload.get(), r#"{"text":"hi"}"#);
        let post = asked("POST", "");
        assert!(post.wants_body());
        assert_eq!(post.with_body(b"").unwrap_err().status, 400);
        let emission = asked("POST", "").with_body(br#"{"n":1}"#).unwrap();
        assert_eq!(emission.payload.get(), r#"{"n":1}"#);
    }

    #[test]
    fn ids_that_do_not_listen_are_skipped_and_asked_again() {
        let mut emission = asked("GET", "clients=a,b,c&x=1").with_body(b"").unwrap();
        let unknown = EmitOutcome::Refused(EmitError::UnknownClients(vec!["b".into()]));
        assert!(emission.settle(unknown).is_none());
        let (reply, _outcome) = crossbeam_channel::bounded(1);
        match emission.command(reply) {
            Command::Emit(emit) => {
                assert_eq!(emit.targets, Targets::Named(vec!["a".into(), "c".into()]));
            }
            other => panic!("not an emit: {other:?}"),
        }
        let sent = EmitOutcome::Sent {
            event_id: "evt_1".into(),
            targeted: vec!["a".into(), "c".into()],
        };
        match emission.settle(sent) {
            Some(Ok(answer)) => assert_eq!(answer.body["unknown"], json!(["b"])),
            other => panic!("not answered: {other:?}"),
        }
    }

    #[test]
    fn a_denial_is_an_access_refusal() {
        let mut emission = asked("GET", "x=1").with_body(b"").unwrap();
        match emission.settle(EmitOutcome::Refused(EmitError::Denied(Denial::NotGranted))) {
            // No credentials shown: 401, not 403.
            Some(Err(Refused::Access(Refusal::NoToken))) => {}
            other => panic!("not refused: {other:?}"),
        }
        let answer = super::refused("$sys", Refusal::NotGranted("$sys".into()));
        assert_eq!(
            (answer.status, &answer.body["code"]),
            (403, &json!("RESERVED_CHANNEL"))
        );
        assert_eq!(body_refused(&BodyError::TooLarge).status, 413);
    }
}
