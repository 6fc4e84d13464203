//! A topic: a named fan-out set with an owner.

use std::collections::BTreeSet;

use super::command::ConnId;
use crate::id::Uuid;

/// A named set of subscribers that messages to the topic fan out to.
#[derive(Debug)]
pub struct Topic {
    /// Display name given at creation.
    pub nickname: Option<String>,
    /// The connection that created the topic; only it may delete it, and
    /// the topic goes when it leaves.
    pub owner: ConnId,
    /// The owner's uuid, kept here so the topic can still be described
    /// while its owner is being removed.
    pub owner_uuid: Uuid,
    /// Who receives the topic's messages. Ordered so that listings and
    /// deliveries are deterministic.
    pub subscribers: BTreeSet<ConnId>,
}

impl Topic {
    /// A topic owned by `owner`, with no subscribers yet.
    pub fn new(owner: ConnId, owner_uuid: Uuid, nickname: Option<String>) -> Topic {
        Topic {
            nickname,
            owner,
            owner_uuid,
            subscribers: BTreeSet::new(),
        }
    }
}
