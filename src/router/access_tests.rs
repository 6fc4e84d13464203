//! The one access rule, through the whole router: members of every
//! dialect admitted with random grants, random publishes from every way
//! in, and never a message delivered outside what the recipient may read
//! or sent by someone who may not write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use serde_json::value::RawValue;

use super::Dialect;
use super::*;

const SETTINGS: Settings = Settings {
    identify_timeout: Duration::from_secs(5),
    ping_interval: Duration::from_secs(10),
    ack_timeout: Duration::from_secs(5),
    heartbeat_interval: Duration::from_secs(20),
    world_user_connections: 8,
    max_document_bytes: 1 << 20,
};

const TOPICS: [&str; 5] = ["a", "ab", "b", "w/r", "$sys"];
const PATTERNS: [&str; 7] = ["a", "a*", "b", "w/*", "*", "$sys", "ab"];

/// What a member or emitter may do, written as the test sees it: its own
/// model of the patterns, independent of `access.rs`.
#[derive(Debug, Clone)]
enum Who {
    /// A trusted service: every topic but `$sys`.
    Service,
    /// These patterns.
    Patterns(Vec<&'static str>),
}

impl Who {
    fn covers(&self, topic: &str) -> bool {
        match self {
            Who::Service => topic != "$sys",
            Who::Patterns(patterns) => patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => topic.starts_with(prefix) && topic != "$sys",
                None => *p == topic,
            }),
        }
    }

    fn grant(&self) -> Grant {
        match self {
            Who::Service => Grant::service(),
            Who::Patterns(patterns) => {
                let patterns = Patterns::parse(patterns.iter().copied());
                Grant {
                    read: patterns.clone(),
                    write: patterns,
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A channels listener of a topic, with read patterns.
    Listen(usize, Who),
    /// A concierge service subscribing to a topic.
    Subscribe(usize),
    /// A world user of world `w` who enters room `r`, with publish patterns.
    World(Who),
    /// An HTTP emit to a topic with a grant.
    Emit(usize, Who),
    /// A member's `hub.publish` to a topic (the member by index).
    Publish(usize, usize),
    /// A concierge MESSAGE to a topic from the first service.
    Send(usize),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        1 => Just(Who::Service),
        4 => prop::collection::vec(prop::sample::select(&PATTERNS[..]), 0..3).prop_map(Who::Patterns),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let topic = 0..TOPICS.len();
    prop_oneof![
        (topic.clone(), who()).prop_map(|(t, w)| Step::Listen(t, w)),
        topic.clone().prop_map(Step::Subscribe),
        who().prop_map(Step::World),
        (topic.clone(), who()).prop_map(|(t, w)| Step::Emit(t, w)),
        (0..8usize, topic.clone()).prop_map(|(m, t)| Step::Publish(m, t)),
        topic.prop_map(Step::Send),
    ]
}

/// A protected hub and what the test knows of its members.
struct Hub {
    router: Router,
    now: Instant,
    next: u64,
    /// Every member's reading rights, as the test models them.
    readers: HashMap<ConnId, Who>,
    /// Every member's writing rights (world users: their room and their
    /// publish patterns).
    writers: Vec<(ConnId, Who)>,
}

impl Hub {
    fn new() -> Hub {
        let policy = Policy {
            protected: true,
            secret: true,
            public_read: Patterns::none(),
            public_write: Patterns::none(),
        };
        Hub {
            router: Router::new(SETTINGS).with_policy(policy),
            now: Instant::now(),
            next: 1,
            readers: HashMap::new(),
            writers: Vec::new(),
        }
    }

    fn open(&mut self, dialect: Dialect) -> ConnId {
        let conn = ConnId(self.next);
        self.next += 1;
        self.handle(Command::Open { conn, dialect });
        conn
    }

    fn handle(&mut self, command: Command) -> Vec<Delivery> {
        self.router.handle(command, self.now)
    }

    fn service(&mut self) -> ConnId {
        let conn = self.open(Dialect::Concierge);
        let name = format!("svc{}", conn.0);
        self.handle(Command::Identify {
            conn,
            name,
            nickname: None,
            tags: Vec::new(),
        });
        self.readers.insert(conn, Who::Service);
        self.writers.push((conn, Who::Service));
        conn
    }

    fn step(&mut self, step: &Step) -> (Vec<Delivery>, Option<(String, Who)>) {
        match step.clone() {
            Step::Listen(topic, who) => {
                let conn = self.open(Dialect::Channels);
                let presence = RawValue::from_string("{}".into()).unwrap();
                let out = self.handle(Command::Listen {
                    conn,
                    topic: TOPICS[topic].into(),
                    presence,
                    grant: who.grant(),
                    token_left: None,
                });
                self.readers.insert(conn, who);
                (out, None)
            }
            Step::Subscribe(topic) => {
                let conn = self.service();
                let topic = TOPICS[topic].to_string();
                let request = Request::Subscribe { topic };
                let out = self.handle(Command::Request {
                    conn,
                    seq: 0,
                    request,
                });
                (out, None)
            }
            Step::World(publish) => {
                let conn = self.open(Dialect::World);
                let room = Patterns::parse(["w/*"]);
                let grant = Grant {
                    read: room.clone(),
                    write: room.and(publish.grant().write),
                };
                let who = Joiner::World {
                    world: "w".into(),
                    user: format!("u{}", conn.0),
                    display: None,
                    traits: Vec::new(),
                    grant,
                    token_left: None,
                    id: None,
                };
                self.handle(Command::Join {
                    conn,
                    who: Box::new(who),
                });
                let mut out = self.call(conn, "room.enter", json!({"room": "r"}));
                out.retain(|d| !matches!(d.event, Event::Notice { .. }));
                self.readers.insert(conn, Who::Patterns(vec!["w/*"]));
                let mut writes = vec!["w/*"];
                if let Who::Patterns(patterns) = &publish {
                    writes.extend(patterns.iter().copied());
                }
                let writes = match publish {
                    Who::Service => Who::Service,
                    Who::Patterns(_) => Who::Patterns(writes),
                };
                self.writers.push((conn, writes));
                (out, None)
            }
            Step::Emit(topic, who) => {
                let (reply, _answer) = crossbeam_channel::bounded(1);
                let emit = Emit {
                    topic: TOPICS[topic].into(),
                    payload: RawValue::from_string("1".into()).unwrap(),
                    targets: Targets::All,
                    require_ack: false,
                    reply,
                    grant: who.grant(),
                };
                let out = self.handle(Command::Emit(Box::new(emit)));
                (out, Some((TOPICS[topic].to_string(), who)))
            }
            Step::Publish(member, topic) => {
                let Some((conn, who)) = self.writers.get(member).cloned() else {
                    return (Vec::new(), None);
                };
                let topic = TOPICS[topic];
                let out = self.call(conn, "hub.publish", json!({"topic": topic, "data": 1}));
                (out, Some((topic.to_string(), who)))
            }
            Step::Send(topic) => {
                let conn = match self.writers.iter().find(|(_, w)| matches!(w, Who::Service)) {
                    Some((conn, _)) => *conn,
                    None => self.service(),
                };
                let request = Request::Send {
                    target: Target::Topic(TOPICS[topic].into()),
                    data: RawValue::from_string("1".into()).unwrap(),
                };
                let out = self.handle(Command::Request {
                    conn,
                    seq: 1,
                    request,
                });
                (out, Some((TOPICS[topic].to_string(), Who::Service)))
            }
        }
    }

    fn call(&mut self, conn: ConnId, method: &str, args: serde_json::Value) -> Vec<Delivery> {
        self.handle(Command::Call {
            conn,
            method: method.into(),
            args,
            reply: None,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_message_is_delivered_outside_the_grants(steps in prop::collection::vec(step(), 1..40)) {
        let mut hub = Hub::new();
        for step in &steps {
            let (out, publisher) = hub.step(step);
            for delivery in &out {
                let Event::Message(message) = &delivery.event else { continue };
                let Target::Topic(topic) = &message.target else { continue };
                if let Some((published, writer)) = &publisher {
                    prop_assert_eq!(published, topic);
                    prop_assert!(writer.covers(topic), "{:?} wrote {} without a grant", writer, topic);
                }
                for to in &delivery.to {
                    let reader = hub.readers.get(to);
                    prop_assert!(
                        reader.is_some_and(|r| r.covers(topic)),
                        "{:?} ({:?}) got a message on {}", to, reader, topic
                    );
                }
            }
        }
    }
}
