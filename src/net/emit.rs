//! `GET|POST /<channel>/emit`, the I/O half: reading the body under the
//! request's deadline, waiting on the router, and writing the answer.
//! What the request means and what the answer says is the channels
//! dialect's (`dialect::channels::emit`), which does no I/O.

use std::fmt;
use std::time::{Duration, Instant};

use super::http::{read_body, Response};
use super::stream::Stream;
use super::Context;
use crate::dialect::channels::emit::{self, Answer, Refused};
use crate::log;
use crate::wire::request::ClientRequest;

/// How much longer than the ack timeout the HTTP thread waits for the
/// router before answering 500 itself.
const ROUTER_GRACE: Duration = Duration::from_secs(10);

/// Answers an emit request to `channel` from `client` (for the log).
pub(crate) fn answer(
    stream: &Stream,
    request: &ClientRequest,
    channel: &str,
    context: &Context,
    (deadline, client): (Instant, &dyn fmt::Display),
) -> Response {
    let answer = match send(stream, request, channel, context, deadline) {
        Ok(answer) | Err(Refused::Invalid(answer)) => answer,
        Err(Refused::Access(refusal)) => {
            context.metrics.access_denied("http", refusal.label());
            log::info!("{client}: emit to {channel:?} refused: {refusal}");
            emit::refused(channel, refusal)
        }
    };
    let response = Response::json(answer.status, &answer.body);
    match answer.allow {
        Some(methods) => response.with_header("Allow", methods),
        None => response,
    }
}

/// Reads the emit, hands it to the router (again, while it names ids
/// that do not listen) and returns the router's settled answer.
fn send(
    stream: &Stream,
    request: &ClientRequest,
    channel: &str,
    context: &Context,
    deadline: Instant,
) -> Result<Answer, Refused> {
    let config = context.config();
    let asked = emit::read_head(request, channel, &config)?;
    let body = match asked.wants_body() {
        true => read_body(stream, request, config.max_message_bytes, deadline)
            .map_err(|error| emit::body_refused(&error))?,
        false => Vec::new(),
    };
    let mut emission = asked.with_body(&body)?;
    context.metrics.emits.increment();
    loop {
        let (reply, outcome) = crossbeam_channel::bounded(1);
        if context.router.send(emission.command(reply)).is_err() {
            return Err(emit::router_stopped().into());
        }
        let Ok(outcome) = outcome.recv_timeout(config.ack_timeout + ROUTER_GRACE) else {
            return Err(emit::router_silent().into());
        };
        if let Some(settled) = emission.settle(outcome) {
            return settled;
        }
    }
}
