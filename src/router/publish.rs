//! Messages: concierge MESSAGEs to a name, uuid, group or everyone; HTTP
//! emits to a channel's listeners; and the ACKs an emit may wait for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use super::Dialect;
use super::{
    Access, ClientInfo, ConnId, Delivery, Emit, EmitError, EmitOutcome, Event, Message, Origin,
    RequestError, Router, Seq, Target, Targets, Timer,
};
use crate::id::{self, Uuid};

/// An emit waiting for ACKs.
#[derive(Debug)]
pub struct PendingAck {
    /// Where the answer goes.
    reply: crossbeam_channel::Sender<EmitOutcome>,
    /// When it stops waiting.
    deadline: Instant,
    /// The client ids the event went to.
    targeted: Vec<String>,
    /// Targets still expected to ACK, with their ids.
    awaited: BTreeMap<ConnId, String>,
    /// Ids that did ACK, in order.
    acked: Vec<String>,
    /// Ids that left before they ACKed.
    gone: Vec<String>,
}

impl Router {
    /// A concierge MESSAGE: to one client by name or uuid, to a topic's
    /// subscribers, or to every concierge client. The sender hears its own
    /// GROUP and ALL messages when it is among their recipients, as with
    /// the original server: its chat shows a line only once it comes back.
    pub(super) fn send(
        &mut self,
        conn: ConnId,
        seq: Seq,
        origin: Arc<ClientInfo>,
        target: Target,
        data: Box<RawValue>,
    ) -> Result<Vec<Delivery>, RequestError> {
        let (to, topic) = match &target {
            Target::Name(name) => match self.names.get(name) {
                Some(&to) => (vec![to], None),
                None => return Err(RequestError::NoSuchName(name.clone())),
            },
            Target::Uuid(text) => match Uuid::parse(text).and_then(|u| self.uuids.get(&u)) {
                Some(&to) => (vec![to], None),
                None => return Err(RequestError::NoSuchUuid(text.clone())),
            },
            Target::Topic(name) => {
                self.may_request(conn, Access::Write, name)?;
                let topic = self.topic(name)?;
                let to = topic.subscribers.iter().copied().collect();
                (to, Some(self.topic_info(name, topic)))
            }
            // ALL is the concierge's own broadcast: channels listeners hear
            // only their channel, and the RPC dialects have no messages.
            Target::All => (self.members_speaking(Dialect::Concierge).collect(), None),
        };
        let event_id = self
            .next_event_id()
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        // Built only when the cluster takes it: nothing copied on one node.
        self.share(conn, |conn| super::cluster::Record::Send {
            conn,
            target: target.clone(),
            data: data.clone(),
            event_id: event_id.clone(),
        });
        let message = Message {
            origin: Origin::Client(origin),
            event_id,
            requires_ack: false,
            target,
            topic,
            data,
        };
        Ok(vec![
            Delivery {
                to,
                event: Event::Message(Arc::new(message)),
            },
            Delivery::one(conn, Event::Sent { seq }),
        ])
    }

    /// An HTTP emit to a channel. The answer goes back on `emit.reply`: at
    /// once, or (with `require_ack`) once every channels target has ACKed,
    /// a target has left without ACKing, or the ack timeout has passed.
    /// Concierge subscribers receive emits too, but have no ACK to send,
    /// so they are never waited for.
    pub(super) fn emit(&mut self, emit: Emit, now: Instant) -> Vec<Delivery> {
        let Emit {
            topic,
            payload,
            targets,
            require_ack,
            reply,
            grant,
        } = emit;
        if let Err(denial) = self.policy.allows(&grant, Access::Write, &topic) {
            let _ = reply.try_send(EmitOutcome::Refused(EmitError::Denied(denial)));
            return Vec::new();
        }
        let chosen = match self.choose(&topic, &targets) {
            Ok(chosen) => chosen,
            Err(error) => {
                let _ = reply.try_send(EmitOutcome::Refused(error));
                return Vec::new();
            }
        };
        let event_id = match event_id() {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.try_send(EmitOutcome::Refused(EmitError::Internal(e.to_string())));
                return Vec::new();
            }
        };
        let targeted: Vec<String> = chosen.iter().filter_map(|&c| self.name_of(c)).collect();
        self.share_emit(
            &topic,
            &payload,
            &event_id,
            &targets,
            require_ack,
            &targeted,
        );
        let message = Message {
            origin: Origin::Http,
            event_id: event_id.clone(),
            requires_ack: require_ack,
            target: Target::Topic(topic.clone()),
            topic: self.topics.get(&topic).map(|t| self.topic_info(&topic, t)),
            data: payload,
        };
        let awaited: BTreeMap<ConnId, String> = chosen
            .iter()
            .filter(|&&c| {
                require_ack
                    && self
                        .member(c)
                        .is_some_and(|m| m.dialect() == Dialect::Channels)
            })
            .filter_map(|&c| Some((c, self.name_of(c)?)))
            .collect();
        if awaited.is_empty() {
            let outcome = match require_ack {
                true => EmitOutcome::Acked {
                    event_id,
                    targeted,
                    acked: Vec::new(),
                },
                false => EmitOutcome::Sent { event_id, targeted },
            };
            let _ = reply.try_send(outcome);
        } else {
            let deadline = now + self.settings.ack_timeout;
            self.timers.set(deadline, Timer::AckWait(event_id.clone()));
            let pending = PendingAck {
                reply,
                deadline,
                targeted,
                awaited,
                acked: Vec::new(),
                gone: Vec::new(),
            };
            self.acks.insert(event_id, pending);
        }
        vec![Delivery {
            to: chosen,
            event: Event::Message(Arc::new(message)),
        }]
    }

    /// Which of the topic's subscribers an emit goes to: all of them, or
    /// (`clients=`) some of its channels listeners, the only subscribers
    /// that have client ids to name and can acknowledge.
    fn choose(&self, topic: &str, targets: &Targets) -> Result<Vec<ConnId>, EmitError> {
        let subscribers = self.topics.get(topic).map(|t| &t.subscribers);
        let all = || subscribers.into_iter().flatten().copied();
        let is_listener = |conn: &ConnId| self.dialect_of(*conn) == Some(Dialect::Channels);
        match targets {
            Targets::All => Ok(all().collect()),
            Targets::Random(wanted) => {
                let listeners: Vec<ConnId> = all().filter(is_listener).collect();
                if *wanted > listeners.len() {
                    return Err(EmitError::TooFewListeners {
                        wanted: *wanted,
                        listening: listeners.len(),
                    });
                }
                pick(listeners, *wanted)
            }
            Targets::Named(ids) => {
                let listener_named = |id: &String| {
                    let conn = self.names.get(id).copied()?;
                    let subscribed = subscribers.is_some_and(|s| s.contains(&conn));
                    (subscribed && is_listener(&conn)).then_some(conn)
                };
                let unknown: Vec<String> = ids
                    .iter()
                    .filter(|id| listener_named(id).is_none())
                    .cloned()
                    .collect();
                if !unknown.is_empty() {
                    return Err(EmitError::UnknownClients(unknown));
                }
                // An id named twice is still one target.
                let mut seen = std::collections::BTreeSet::new();
                Ok(ids
                    .iter()
                    .filter_map(listener_named)
                    .filter(|&conn| seen.insert(conn))
                    .collect())
            }
        }
    }

    /// An ACK: when the last awaited target has acknowledged, the emit is
    /// answered. ACKs for unknown or settled events, or from clients not
    /// awaited, change nothing.
    pub(super) fn ack(&mut self, conn: ConnId, event_id: &str) {
        let Some(pending) = self.acks.get_mut(event_id) else {
            return;
        };
        if let Some(id) = pending.awaited.remove(&conn) {
            pending.acked.push(id);
        }
        if pending.awaited.is_empty() {
            self.settle(event_id);
        }
    }

    /// `conn` is leaving: emits waiting for it stop, and those it was the
    /// last to wait for are answered.
    pub(super) fn stop_awaiting(&mut self, conn: ConnId) {
        let mut settled = Vec::new();
        for (event_id, pending) in &mut self.acks {
            if let Some(id) = pending.awaited.remove(&conn) {
                pending.gone.push(id);
                if pending.awaited.is_empty() {
                    settled.push(event_id.clone());
                }
            }
        }
        for event_id in settled {
            self.settle(&event_id);
        }
    }

    /// Answers a waiting emit with what is known now.
    pub(super) fn settle(&mut self, event_id: &str) {
        let Some(pending) = self.acks.remove(event_id) else {
            return;
        };
        self.timers
            .cancel(pending.deadline, Timer::AckWait(event_id.to_string()));
        let PendingAck {
            reply,
            targeted,
            awaited,
            acked,
            mut gone,
            ..
        } = pending;
        let event_id = event_id.to_string();
        let outcome = if awaited.is_empty() && gone.is_empty() {
            EmitOutcome::Acked {
                event_id,
                targeted,
                acked,
            }
        } else {
            gone.extend(awaited.into_values());
            EmitOutcome::Unacked {
                event_id,
                targeted,
                acked,
                missing: gone,
            }
        };
        // The HTTP thread may have given up; then nobody needs the answer.
        let _ = reply.try_send(outcome);
    }

    fn name_of(&self, conn: ConnId) -> Option<String> {
        self.member(conn).map(|m| m.info.name.clone())
    }
}

/// A fresh event id, `evt_` and eight random characters.
pub(super) fn event_id() -> Result<String, getrandom::Error> {
    id::token("evt_", 8)
}

/// `wanted` of `listeners`, chosen uniformly at random, all different
/// (the first steps of a Fisher-Yates shuffle).
fn pick(mut listeners: Vec<ConnId>, wanted: usize) -> Result<Vec<ConnId>, EmitError> {
    for i in 0..wanted {
        let j =
            i + id::below(listeners.len() - i).map_err(|e| EmitError::Internal(e.to_string()))?;
        listeners.swap(i, j);
    }
    listeners.truncate(wanted);
    Ok(listeners)
}
