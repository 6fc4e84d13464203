//! Rooms: world clients authenticating into a world, moving between its
//! rooms, talking in them and changing their profile. Room `R` of world
//! `W` is topic `W/R`.

use serde_json::{json, Value};

use super::calls::{arg, raw, Outcome};
use super::member::{Identity, Kind, WorldUser};
use super::Dialect;
use super::{Access, ConnId, Delivery, Disconnect, Event, Grant, Router};
use crate::methods::RpcError;

/// The longest room name accepted.
const MAX_ROOM_LEN: usize = 128;

impl Router {
    /// A world client authenticated. If its user now has more connections
    /// to the world than allowed, the oldest is replaced.
    pub(super) fn join_world(
        &mut self,
        conn: ConnId,
        user: WorldUser,
        grant: Grant,
        id: Option<crate::methods::CallId>,
    ) -> Vec<Delivery> {
        if self.conns.contains_key(&conn) {
            return Vec::new(); // the session authenticates once
        }
        let world = user.world.clone();
        let tags = vec!["world".to_string(), world.clone()];
        let (display, presence) = (user.display.clone(), raw(&json!({})).into());
        let identity = Identity::new("world_", display, tags, grant);
        if let Err(refusal) = self.enroll(conn, identity, presence, Kind::World(Box::new(user))) {
            return refusal;
        }
        let mut out = vec![Delivery::one(
            conn,
            Event::Authenticated {
                id,
                user: self.user_view(conn),
                world: self.world_config(conn, &world),
            },
        )];
        out.extend(self.replace_surplus(conn));
        out
    }

    /// Evicts the connections of `conn`'s user in its world beyond the
    /// per-user limit, the earliest authenticated first.
    fn replace_surplus(&mut self, conn: ConnId) -> Vec<Delivery> {
        let Some(Kind::World(me)) = self.member(conn).map(|m| &m.kind) else {
            return Vec::new();
        };
        // Connections of this node only: the limit is per node, and another
        // node's connections are its own to replace.
        let mut same_user: Vec<(u64, ConnId)> = self
            .members_speaking(Dialect::World)
            .filter(|c| !c.is_shadow())
            .filter_map(|c| match self.member(c).map(|m| &m.kind) {
                Some(Kind::World(other)) if other.world == me.world && other.user == me.user => {
                    Some((other.since, c))
                }
                _ => None,
            })
            .collect();
        same_user.sort();
        let surplus = same_user
            .len()
            .saturating_sub(self.settings.world_user_connections);
        same_user
            .into_iter()
            .take(surplus)
            .flat_map(|(_, old)| self.evict(old, Disconnect::Replaced))
            .collect()
    }

    /// `room.enter`, `room.leave`, `room.send`, `user.update`.
    pub(super) fn world_action(&mut self, conn: ConnId, action: &str, args: &Value) -> Outcome {
        match action {
            "room.enter" => {
                let (room, topic) = self.room_arg(conn, args)?;
                self.may_enter(conn, Access::Read, &room, &topic)?;
                let mut out = self.join_topic(conn, &topic);
                let body = json!({"room": room, "user": self.user_view(conn)});
                out.extend(self.room_notice(&topic, conn, "room.enter", &body));
                Ok((body, out))
            }
            "room.leave" => {
                let (room, topic) = self.room_arg(conn, args)?;
                let body = json!({"room": room, "user": self.user_view(conn)});
                let mut out = self.room_notice(&topic, conn, "room.leave", &body);
                out.extend(self.leave_topic(conn, &topic));
                Ok((body, out))
            }
            "room.send" => {
                let (room, topic) = self.room_arg(conn, args)?;
                self.may_enter(conn, Access::Write, &room, &topic)?;
                if !self
                    .member(conn)
                    .is_some_and(|m| m.subscriptions.contains(&topic))
                {
                    return Err(RpcError::new(
                        "room.not_entered",
                        format!("enter {room:?} first"),
                    ));
                }
                let content = arg(args, 1, "content").cloned().unwrap_or(Value::Null);
                let body =
                    json!({"room": room, "content": content, "sender": self.user_view(conn)});
                let notice = self.room_notice(&topic, conn, "room.send", &body);
                Ok((body, notice))
            }
            "user.update" => self.update_profile(conn, args),
            _ => Err(RpcError::new(
                "unknown_method",
                format!("no action {action:?}"),
            )),
        }
    }

    /// The one access rule for a room (a world user's token grants its
    /// world's rooms; an anonymous one only what the operator opened).
    fn may_enter(
        &self,
        conn: ConnId,
        access: Access,
        room: &str,
        topic: &str,
    ) -> Result<(), RpcError> {
        self.may_or_deny(conn, access, topic).map_err(|_| {
            RpcError::new(
                "room.forbidden",
                format!("you may not {access} room {room:?}: not granted"),
            )
        })
    }

    /// `user.update`: the profile becomes the member's presence; the world
    /// clients sharing a room with it hear of it.
    fn update_profile(&mut self, conn: ConnId, args: &Value) -> Outcome {
        let profile = match arg(args, 0, "profile") {
            Some(profile @ Value::Object(_)) => raw(profile),
            _ => return Err(RpcError::new("invalid_args", "`profile` must be an object")),
        };
        // The profile is the member's presence, sent to others on every
        // change: kept as small as channels keep theirs.
        let limit = super::MAX_PRESENCE_BYTES;
        if profile.get().len() > limit {
            let why = format!("`profile` is limited to {limit} bytes of JSON");
            return Err(RpcError::new("invalid_args", why));
        }
        // World clients hear of their own change in the reply, not here.
        let mut out = self.update_presence(conn, profile, false);
        let body = json!({"user": self.user_view(conn)});
        let rooms: Vec<String> = self
            .member(conn)
            .map(|m| m.subscriptions.to_vec())
            .unwrap_or_default();
        let mut to: Vec<ConnId> = rooms
            .iter()
            .filter_map(|topic| self.topics.get(topic))
            .flat_map(|topic| topic.subscribers.iter().copied())
            .filter(|&c| {
                c != conn
                    && self
                        .member(c)
                        .is_some_and(|m| m.dialect() == Dialect::World)
            })
            .collect();
        to.sort();
        to.dedup();
        out.push(Delivery {
            to,
            event: Event::Notice {
                action: "user.update",
                body: body.clone(),
            },
        });
        Ok((body, out))
    }

    /// The operator's reload: every client of `world` (or of all worlds)
    /// is told to reload. Returns how many were told.
    pub(super) fn reload(&mut self, world: Option<&str>) -> (usize, Vec<Delivery>) {
        let to: Vec<ConnId> = self
            .members_speaking(Dialect::World)
            .filter(|&c| match self.member(c).map(|m| &m.kind) {
                Some(Kind::World(user)) => world.is_none_or(|w| w == user.world),
                _ => false,
            })
            .collect();
        (
            to.len(),
            vec![Delivery {
                to,
                event: Event::Reload,
            }],
        )
    }

    /// The room named in `args`, and its topic in `conn`'s world.
    fn room_arg(&self, conn: ConnId, args: &Value) -> Result<(String, String), RpcError> {
        let Some(Kind::World(user)) = self.member(conn).map(|m| &m.kind) else {
            return Err(RpcError::new(
                "unknown_method",
                "rooms are for world clients",
            ));
        };
        match arg(args, 0, "room") {
            Some(Value::String(room)) if is_room_name(room) => {
                Ok((room.clone(), format!("{}/{room}", user.world)))
            }
            _ => Err(RpcError::new(
                "invalid_args",
                format!("`room` must be 1 to {MAX_ROOM_LEN} characters of A-Z a-z 0-9 _ - . ~"),
            )),
        }
    }

    /// A world client is leaving: the other world clients of each of its
    /// rooms hear `room.leave`, as if it had left them itself.
    pub(super) fn leave_rooms(&self, conn: ConnId) -> Vec<Delivery> {
        let Some(member) = self.member(conn) else {
            return Vec::new();
        };
        let Kind::World(user) = &member.kind else {
            return Vec::new();
        };
        let prefix = format!("{}/", user.world);
        member
            .subscriptions
            .iter()
            .filter_map(|topic| Some((topic, topic.strip_prefix(&prefix)?)))
            .flat_map(|(topic, room)| {
                let body = json!({"room": room, "user": self.user_view(conn)});
                self.room_notice(topic, conn, "room.leave", &body)
            })
            .collect()
    }

    /// `[action, body]` for the room's other world clients.
    fn room_notice(
        &self,
        topic: &str,
        conn: ConnId,
        action: &'static str,
        body: &Value,
    ) -> Vec<Delivery> {
        let to: Vec<ConnId> = self
            .topics
            .get(topic)
            .map(|t| {
                t.subscribers
                    .iter()
                    .copied()
                    .filter(|&c| {
                        c != conn
                            && self
                                .member(c)
                                .is_some_and(|m| m.dialect() == Dialect::World)
                    })
                    .collect()
            })
            .unwrap_or_default();
        vec![Delivery {
            to,
            event: Event::Notice {
                action,
                body: body.clone(),
            },
        }]
    }

    /// A world user as others see it: `{"id", "name", "profile"}`.
    pub(super) fn user_view(&self, conn: ConnId) -> Value {
        match self.member(conn) {
            Some(member) => {
                let (id, name) = match &member.kind {
                    Kind::World(user) => (user.user.clone(), user.display.clone()),
                    _ => (member.info.name.clone(), member.info.nickname.clone()),
                };
                let profile: Value =
                    serde_json::from_str(member.presence().get()).unwrap_or(Value::Null);
                json!({"id": id, "name": name, "profile": profile})
            }
            None => Value::Null,
        }
    }

    /// `world.config`: the world, what `conn` may do in it, and the rooms
    /// it may read, with their member counts. The shape is venueless's,
    /// whose webapp reads `world`, `permissions` and `rooms` (each with
    /// `id` and `modules`) as soon as it is authenticated; switchboard's
    /// rooms have no modules, and their permissions are its access rule's
    /// read (`room:view`) and write (`room:chat.send`).
    fn world_config(&self, conn: ConnId, world: &str) -> Value {
        let prefix = format!("{world}/");
        let rooms: Vec<Value> = self
            .topics
            .iter()
            .filter(|(name, _)| self.may(conn, Access::Read, name).is_ok())
            .filter_map(|(name, topic)| {
                let room = name.strip_prefix(&prefix)?;
                let mut permissions = vec!["room:view"];
                if self.may(conn, Access::Write, name).is_ok() {
                    permissions.push("room:chat.send");
                }
                Some(json!({
                    "id": room,
                    "name": room,
                    "members": topic.subscribers.len(),
                    "modules": [],
                    "permissions": permissions,
                }))
            })
            .collect();
        json!({
            "world": {"id": world, "title": world},
            "permissions": ["world:view"],
            "rooms": rooms,
        })
    }
}

/// Room names: 1 to [`MAX_ROOM_LEN`] URL-safe characters.
fn is_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~'))
}
