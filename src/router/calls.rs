//! Calls: the hub's built-in methods, world actions, and handing the rest
//! to the embedder's worker pool.
//!
//! Built-in methods (arguments by position in common's `a` array, or by
//! name in world's payload object):
//! - `hub.publish` (`topic`, `data`): publish `data` to a topic's
//!   subscribers in every dialect; answers `{"eventID", "delivered"}`.
//! - `hub.topics`: every topic, `[{"name", "owner", "subscribers": n}]`.
//! - `hub.clients`: every member, `[{"name", "uuid", "dialect", "tags"}]`.
//! - `hub.presence` (`topic`): a topic's members, `[{"name", "presence"}]`.
//! - `hub.info`: the server, `{"server", "version", "uptime_s", ...}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::member::Kind;
use super::{Access, ConnId, Delivery, Denial, Event, Message, Origin, Router, Target};
use crate::methods::{Caller, Job, Pool, ReplyTo, RpcError};

/// The embedder's methods, as the router sees them: the workers that run
/// them (if the embedder registered any), and each connection's calls
/// running there. Only this file uses them.
#[derive(Debug, Default)]
pub(super) struct Embedder {
    /// The embedder's methods and the workers that run them, if any.
    pub(super) pool: Option<Pool>,
    /// Calls running, per connection (at most [`MAX_CALLS_IN_FLIGHT`]).
    running: HashMap<ConnId, usize>,
}

/// Calls of an embedder's methods one connection may have running.
const MAX_CALLS_IN_FLIGHT: usize = 16;

/// The longest topic name `hub.publish` and `hub.presence` accept.
const MAX_TOPIC_LEN: usize = 300;

/// A method's outcome: its result and what others are told.
pub(super) type Outcome = Result<(Value, Vec<Delivery>), RpcError>;

impl Router {
    /// Runs (or hands off) a call, and answers it if it has an id.
    pub(super) fn call(
        &mut self,
        conn: ConnId,
        method: &str,
        args: &Value,
        reply: Option<ReplyTo>,
        now: Instant,
    ) -> Vec<Delivery> {
        let Some(member) = self.member(conn) else {
            return Vec::new(); // not (or no longer) a member
        };
        let is_world = matches!(member.kind, Kind::World(_));
        let outcome = match method {
            "room.enter" | "room.leave" | "room.send" | "user.update" if is_world => {
                self.share_call(conn, method, args, |r| r.world_action(conn, method, args))
            }
            "hub.publish" => self.share_call(conn, method, args, |r| r.publish(conn, args)),
            "hub.topics" => Ok((self.topic_list(conn), Vec::new())),
            "hub.clients" => self.client_list(conn).map(|list| (list, Vec::new())),
            "hub.presence" => self.presence_of(conn, args),
            "hub.info" => Ok((self.info(now), Vec::new())),
            other => match self.hand_off(conn, other, args, reply.clone()) {
                Ok(()) => return Vec::new(), // a worker answers later
                Err(error) => Err(error),
            },
        };
        let (result, others) = match outcome {
            Ok((result, others)) => (Ok(result), others),
            Err(error) => (Err(error), Vec::new()),
        };
        let mut out: Vec<Delivery> = reply
            .map(|reply| {
                Delivery::one(
                    conn,
                    Event::Reply {
                        id: reply.id,
                        result,
                    },
                )
            })
            .into_iter()
            .collect();
        out.extend(others);
        out
    }

    /// A worker's answer to an embedder's method.
    pub(super) fn answer(
        &mut self,
        conn: ConnId,
        reply: Option<ReplyTo>,
        result: Result<Value, RpcError>,
    ) -> Vec<Delivery> {
        if let Some(running) = self.embedder.running.get_mut(&conn) {
            *running -= 1;
            if *running == 0 {
                self.embedder.running.remove(&conn);
            }
        }
        match (reply, self.member(conn)) {
            (Some(reply), Some(_)) => {
                vec![Delivery::one(
                    conn,
                    Event::Reply {
                        id: reply.id,
                        result,
                    },
                )]
            }
            _ => Vec::new(), // no answer wanted, or it left meanwhile
        }
    }

    /// Queues an embedder's method for the worker pool. A connection may
    /// have [`MAX_CALLS_IN_FLIGHT`] running at once: one client cannot fill
    /// the queue for everyone, nor hold more than that many arguments.
    fn hand_off(
        &mut self,
        conn: ConnId,
        name: &str,
        args: &Value,
        reply: Option<ReplyTo>,
    ) -> Result<(), RpcError> {
        let unknown = || RpcError::new("unknown_method", format!("no method is called {name:?}"));
        let pool = self.embedder.pool.as_ref().ok_or_else(unknown)?;
        let method = pool.method(name).ok_or_else(unknown)?.clone();
        let caller = self.caller(conn).ok_or_else(unknown)?;
        let running = self.embedder.running.get(&conn).copied().unwrap_or(0);
        if running >= MAX_CALLS_IN_FLIGHT {
            let why = format!("{MAX_CALLS_IN_FLIGHT} of your calls are still running");
            return Err(RpcError::new("busy", why));
        }
        pool.submit(Job::new(method, caller, args.clone(), conn, reply))?;
        *self.embedder.running.entry(conn).or_insert(0) += 1;
        Ok(())
    }

    fn caller(&self, conn: ConnId) -> Option<Caller> {
        let member = self.member(conn)?;
        let (user, traits) = match &member.kind {
            Kind::World(world) => (Some(world.user.clone()), world.traits.clone()),
            _ => (None, Vec::new()),
        };
        Some(Caller {
            name: member.info.name.clone(),
            uuid: member.info.uuid,
            dialect: member.dialect(),
            user,
            traits,
        })
    }

    /// `hub.publish`: `data` to every subscriber of `topic` but the caller.
    fn publish(&mut self, conn: ConnId, args: &Value) -> Outcome {
        let topic = topic_arg(args, 0)?;
        self.may_call(conn, Access::Write, &topic)?;
        let data = arg(args, 1, "data")
            .cloned()
            .ok_or_else(|| RpcError::new("invalid_args", "`data` is required (null is data)"))?;
        let origin = self
            .member(conn)
            .map(|m| m.info.clone())
            .ok_or_else(|| RpcError::new("internal", "the caller is not a member"))?;
        let to: Vec<ConnId> = self
            .topics
            .get(&topic)
            .map(|t| {
                t.subscribers
                    .iter()
                    .copied()
                    .filter(|&c| c != conn)
                    .collect()
            })
            .unwrap_or_default();
        let event_id = self
            .next_event_id()
            .map_err(|e| RpcError::new("internal", e.to_string()))?;
        let message = Message {
            origin: Origin::Client(origin),
            event_id: event_id.clone(),
            requires_ack: false,
            target: Target::Topic(topic.clone()),
            topic: self.topics.get(&topic).map(|t| self.topic_info(&topic, t)),
            data: raw(&data),
        };
        let result = json!({"eventID": event_id, "delivered": to.len()});
        let delivery = Delivery {
            to,
            event: Event::Message(Arc::new(message)),
        };
        Ok((result, vec![delivery]))
    }

    /// The one access rule, as a call's refusal.
    fn may_call(&self, conn: ConnId, access: Access, topic: &str) -> Result<(), RpcError> {
        self.may_or_deny(conn, access, topic)
            .map_err(|denial| match denial {
                Denial::Reserved => RpcError::new(
                    "forbidden",
                    format!("{topic} is reserved: only the server publishes to it"),
                ),
                Denial::NotGranted => RpcError::new(
                    "forbidden",
                    format!("you may not {access} {topic:?}: not granted"),
                ),
            })
    }

    /// Every topic the caller may read.
    fn topic_list(&self, conn: ConnId) -> Value {
        let topics: Vec<Value> = self
            .topics
            .iter()
            .filter(|(name, _)| self.may(conn, Access::Read, name).is_ok())
            .map(|(name, topic)| {
                json!({
                    "name": name,
                    "owner": topic.owner.map(|o| o.uuid.to_string()),
                    "subscribers": topic.subscribers.len(),
                })
            })
            .collect();
        Value::Array(topics)
    }

    /// Every member of the hub: for trusted services, or anyone on an open
    /// hub (the list crosses every topic, so no topic grant covers it).
    fn client_list(&self, conn: ConnId) -> Result<Value, RpcError> {
        let trusted = self.member(conn).is_some_and(|m| m.grant.is_service());
        if self.policy.protected && !trusted {
            return Err(RpcError::new(
                "forbidden",
                "hub.clients lists every member: trusted services only on a protected hub",
            ));
        }
        let mut clients: Vec<(&str, Value)> = self
            .conns
            .values()
            .filter_map(|state| match state {
                super::Conn::Member(member) => Some((
                    member.info.name.as_str(),
                    json!({
                        "name": member.info.name,
                        "uuid": member.info.uuid.to_string(),
                        "dialect": member.dialect().name(),
                        "tags": member.info.tags,
                    }),
                )),
                _ => None,
            })
            .collect();
        clients.sort_by(|a, b| a.0.cmp(b.0));
        Ok(Value::Array(
            clients.into_iter().map(|(_, client)| client).collect(),
        ))
    }

    fn presence_of(&self, conn: ConnId, args: &Value) -> Outcome {
        let name = topic_arg(args, 0)?;
        self.may_call(conn, Access::Read, &name)?;
        let topic = self
            .topics
            .get(&name)
            .ok_or_else(|| RpcError::new("no_such_topic", format!("no topic is named {name:?}")))?;
        let members: Vec<Value> = topic
            .subscribers
            .iter()
            .filter_map(|&c| self.member(c))
            .map(|m| json!({"name": m.info.name, "presence": &*m.presence()}))
            .collect();
        Ok((Value::Array(members), Vec::new()))
    }

    fn info(&self, now: Instant) -> Value {
        let per_dialect = self.member_counts();
        json!({
            "server": "switchboard",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": now.saturating_duration_since(self.started).as_secs(),
            "topics": self.topics.len(),
            "members": per_dialect,
        })
    }
}

/// Argument `index` (common's positional `a`) or `name` (world's object).
pub(super) fn arg<'a>(args: &'a Value, index: usize, name: &str) -> Option<&'a Value> {
    match args {
        Value::Array(items) => items.get(index),
        Value::Object(fields) => fields.get(name),
        _ => None,
    }
}

fn topic_arg(args: &Value, index: usize) -> Result<String, RpcError> {
    match arg(args, index, "topic") {
        Some(Value::String(topic)) if !topic.is_empty() && topic.len() <= MAX_TOPIC_LEN => {
            Ok(topic.clone())
        }
        _ => Err(RpcError::new(
            "invalid_args",
            format!("`topic` must be a string of 1 to {MAX_TOPIC_LEN} bytes"),
        )),
    }
}

/// A JSON value as raw JSON, for a message's `data`.
pub(super) fn raw(value: &Value) -> Box<RawValue> {
    // A `Value` always serializes, to valid JSON.
    serde_json::value::to_raw_value(value).expect("a JSON value serializes")
}
