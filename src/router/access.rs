//! The one access rule: whether a member may read or write a topic.
//!
//! Every way into the namespace asks [`Policy::allows`]: a channels
//! listener before its upgrade and again when it joins, a concierge
//! SUBSCRIBE or MESSAGE, an HTTP emit, a world action, a common
//! `hub.publish`, a blazing join. Because the namespace is shared, a topic
//! written by one dialect is read by all the others; deciding in one place
//! is what keeps a grant from leaking through a side door.
//!
//! - **What a member brings** is a [`Grant`]: the topics it may read and
//!   those it may write, as [`Patterns`], fixed when it is admitted (its
//!   dialect turns its credentials into one). A trusted service (a
//!   concierge client that knew the secret) holds every topic; a token
//!   holds what its claims name; an anonymous client holds nothing.
//! - **What the operator opens** is the [`Policy`]: on an *open* hub (no
//!   credential configured at all) everyone reads and writes everything;
//!   on a *protected* one, only what a grant or the public patterns cover.
//! - **Reserved topics** (`$sys`) are nobody's to write, and are read only
//!   by those granted their exact name: a pattern such as `*` never
//!   reaches them, so opening "everything" does not open the server's own
//!   status.

use std::borrow::Cow;
use std::fmt;

use super::sys::is_reserved;

/// Reading (subscribing, listening, entering a room, listing a topic's
/// members) or writing (publishing, emitting, sending in a room, editing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receiving what is published to the topic.
    Read,
    /// Publishing to the topic.
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// One pattern of a grant: a topic's exact name, or `prefix*` for every
/// topic whose name starts with `prefix` (`*` alone: every topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// This topic only.
    Exact(String),
    /// Every topic whose name starts with this (reserved ones excepted).
    Prefix(String),
}

impl Pattern {
    /// Reads `text`: a trailing `*` makes a prefix pattern.
    pub fn parse(text: &str) -> Pattern {
        match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(text.to_string()),
        }
    }

    /// Whether the pattern covers `topic`. A prefix never covers a
    /// reserved topic: those are granted by their exact name only.
    pub fn covers(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == topic,
            Pattern::Prefix(prefix) => topic.starts_with(prefix.as_str()) && !is_reserved(topic),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A set of patterns; empty covers nothing.
///
/// Borrowed when it is one of the fixed sets: every trusted service holds
/// [`Patterns::everything`] twice, and sharing it keeps two allocations out
/// of each such member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(Cow<'static, [Pattern]>);

/// The patterns of [`Patterns::everything`]: the empty prefix.
const EVERYTHING: &[Pattern] = &[Pattern::Prefix(String::new())];

impl Patterns {
    /// Covers nothing.
    pub fn none() -> Patterns {
        Patterns(Cow::Borrowed(&[]))
    }

    /// Covers every topic but the reserved ones.
    pub fn everything() -> Patterns {
        Patterns(Cow::Borrowed(EVERYTHING))
    }

    /// The patterns in `texts` (empty entries are skipped).
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Patterns {
        Patterns(
            texts
                .into_iter()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(Pattern::parse)
                .collect::<Vec<_>>()
                .into(),
        )
    }

    /// A comma-separated list, as the flags take it.
    pub fn parse_list(list: &str) -> Patterns {
        Patterns::parse(list.split(','))
    }

    /// Whether any pattern covers `topic`.
    pub fn covers(&self, topic: &str) -> bool {
        self.0.iter().any(|pattern| pattern.covers(topic))
    }

    /// Whether it covers nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These patterns and `other`'s.
    #[must_use]
    pub fn and(mut self, other: Patterns) -> Patterns {
        self.0.to_mut().extend(other.0.iter().cloned());
        self
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join(","))
    }
}

/// What one member may reach, fixed when it is admitted: a connection
/// keeps the grant it was admitted with (until its token expires), even
/// if the operator reloads other settings meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The topics it may read.
    pub read: Patterns,
    /// The topics it may write.
    pub write: Patterns,
}

impl Grant {
    /// A trusted service (it proved the hub's secret): every topic but the
    /// reserved ones.
    pub fn service() -> Grant {
        Grant {
            read: Patterns::everything(),
            write: Patterns::everything(),
        }
    }

    /// Someone without credentials: only what the operator made public.
    pub fn anonymous() -> Grant {
        Grant::default()
    }

    /// Whether this grant reaches every topic (a trusted service), which
    /// the listings of the whole hub (`hub.clients`) ask for.
    pub fn is_service(&self) -> bool {
        self == &Grant::service()
    }

    fn patterns(&self, access: Access) -> &Patterns {
        match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        }
    }
}

/// Why access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Nobody but the server writes a reserved topic.
    Reserved,
    /// The member's grant and the public patterns do not cover the topic.
    NotGranted,
}

impl Denial {
    /// The label of `switchboard_access_denied_total`'s `reason`.
    pub fn label(self) -> &'static str {
        match self {
            Denial::Reserved => "reserved",
            Denial::NotGranted => "not_granted",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denial::Reserved => "reserved: only the server publishes to it",
            Denial::NotGranted => "not granted",
        })
    }
}

/// The operator's part of the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Whether any credential is configured (`--secret`, `--jwt-key`,
    /// `--emit-token`). An open hub lets anyone read and write anything.
    pub protected: bool,
    /// Whether concierge and common clients must prove the hub's secret
    /// (`--secret`) to get in: only then are they trusted services on a
    /// protected hub. Without a secret they proved nothing, and hold
    /// nothing but the public patterns.
    pub secret: bool,
    /// Topics anyone may read on a protected hub (`--public-channels`).
    pub public_read: Patterns,
    /// Topics anyone may write on a protected hub (`--public-emit`).
    pub public_write: Patterns,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::open()
    }
}

impl Policy {
    /// Everyone reads and writes everything (reserved topics excepted).
    pub fn open() -> Policy {
        Policy {
            protected: false,
            secret: false,
            public_read: Patterns::none(),
            public_write: Patterns::none(),
        }
    }

    /// The grant of a concierge or common client that got in: a trusted
    /// service if it proved the secret (or the hub is open), else nothing.
    pub fn service_grant(&self) -> Grant {
        match self.secret || !self.protected {
            true => Grant::service(),
            false => Grant::anonymous(),
        }
    }

    /// The rule: whether a member holding `grant` may `access` `topic`.
    pub fn allows(&self, grant: &Grant, access: Access, topic: &str) -> Result<(), Denial> {
        if is_reserved(topic) && access == Access::Write {
            return Err(Denial::Reserved);
        }
        let public = match access {
            Access::Read => &self.public_read,
            Access::Write => &self.public_write,
        };
        let open = !self.protected && !is_reserved(topic);
        // A reserved topic on an open hub is readable by anyone: the
        // status page works out of the box where nothing is protected.
        let open_reserved = !self.protected && access == Access::Read;
        if open || open_reserved || public.covers(topic) || grant.patterns(access).covers(topic) {
            Ok(())
        } else {
            Err(Denial::NotGranted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn protected() -> Policy {
        Policy {
            protected: true,
            ..Policy::open()
        }
    }

    fn grant(read: &str, write: &str) -> Grant {
        Grant {
            read: Patterns::parse_list(read),
            write: Patterns::parse_list(write),
        }
    }

    #[test]
    fn patterns_are_exact_names_or_prefixes() {
        let patterns = Patterns::parse_list("room, news.*, ,team-");
        assert!(patterns.covers("room"));
        assert!(!patterns.covers("room2"));
        assert!(patterns.covers("news.sport"));
        assert!(patterns.covers("news."));
        assert!(!patterns.covers("news"));
        assert!(patterns.covers("team-"));
        assert!(!patterns.covers("team-a"));
        assert_eq!(patterns.to_string(), "room,news.*,team-");
        assert!(Patterns::parse_list(" , ").is_empty());
    }

    #[test]
    fn reserved_topics_need_their_exact_name() {
        assert!(!Patterns::parse_list("*").covers("$sys"));
        assert!(!Patterns::parse_list("$*").covers("$sys"));
        assert!(Patterns::parse_list("$sys").covers("$sys"));
        assert!(!Grant::service().read.covers("$sys"));
    }

    #[test]
    fn services_are_trusted_only_where_they_proved_a_secret() {
        assert!(Policy::open().service_grant().is_service());
        let keyed = protected();
        assert_eq!(keyed.service_grant(), Grant::anonymous());
        let with_secret = Policy {
            secret: true,
            ..protected()
        };
        assert!(with_secret.service_grant().is_service());
    }

    #[test]
    fn an_open_hub_lets_anyone_read_and_write_but_never_write_reserved() {
        let open = Policy::open();
        let nobody = Grant::anonymous();
        assert_eq!(open.allows(&nobody, Access::Read, "payroll"), Ok(()));
        assert_eq!(open.allows(&nobody, Access::Write, "payroll"), Ok(()));
        assert_eq!(open.allows(&nobody, Access::Read, "$sys"), Ok(()));
        assert_eq!(
            open.allows(&Grant::service(), Access::Write, "$sys"),
            Err(Denial::Reserved)
        );
    }

    #[test]
    fn a_protected_hub_allows_what_the_grant_or_the_public_patterns_cover() {
        let policy = Policy {
            public_read: Patterns::parse_list("lobby,$sys"),
            public_write: Patterns::parse_list("inbox"),
            ..protected()
        };
        let nobody = Grant::anonymous();
        assert_eq!(
            policy.allows(&nobody, Access::Read, "payroll"),
            Err(Denial::NotGranted)
        );
        assert_eq!(policy.allows(&nobody, Access::Read, "lobby"), Ok(()));
        assert_eq!(policy.allows(&nobody, Access::Read, "$sys"), Ok(()));
        assert_eq!(
            policy.allows(&nobody, Access::Write, "lobby"),
            Err(Denial::NotGranted)
        );
        assert_eq!(policy.allows(&nobody, Access::Write, "inbox"), Ok(()));
        let reader = grant("news.*", "");
        assert_eq!(policy.allows(&reader, Access::Read, "news.a"), Ok(()));
        assert_eq!(
            policy.allows(&reader, Access::Write, "news.a"),
            Err(Denial::NotGranted)
        );
        let service = Grant::service();
        assert_eq!(policy.allows(&service, Access::Write, "payroll"), Ok(()));
        assert_eq!(
            protected().allows(&service, Access::Read, "$sys"),
            Err(Denial::NotGranted)
        );
    }

    fn topic() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("$sys".to_string()),
            "[a-c]{1,3}".prop_map(|s| s),
            "[a-c]{1,2}/[a-c]{1,2}".prop_map(|s| s),
        ]
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![topic(), topic().prop_map(|t| format!("{t}*"))]
    }

    proptest! {
        // Nothing is reachable on a protected hub that neither the grant
        // nor the public patterns name, and a reserved topic is never
        // written.
        #[test]
        fn a_protected_hub_never_allows_beyond_the_grant(
            read in prop::collection::vec(pattern(), 0..4),
            write in prop::collection::vec(pattern(), 0..4),
            public in prop::collection::vec(pattern(), 0..3),
            topic in topic(),
        ) {
            let grant = Grant {
                read: Patterns::parse(read.iter().map(String::as_str)),
                write: Patterns::parse(write.iter().map(String::as_str)),
            };
            let policy = Policy {
                public_read: Patterns::parse(public.iter().map(String::as_str)),
                ..protected()
            };
            let named = |patterns: &[String], topic: &str| {
                patterns.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => topic.starts_with(prefix) && topic != "$sys",
                    None => p == topic,
                })
            };
            let may_read = policy.allows(&grant, Access::Read, &topic).is_ok();
            prop_assert_eq!(may_read, named(&read, &topic) || named(&public, &topic));
            let may_write = policy.allows(&grant, Access::Write, &topic).is_ok();
            prop_assert_eq!(may_write, topic != "$sys" && named(&write, &topic));
        }
    }
}
