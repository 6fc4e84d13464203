//! The router's side of a cluster, checked without Redis or sockets: two
//! routers, and the records of one handed to the other as the bus would.

use std::time::Instant;

use serde_json::value::RawValue;

use super::cluster::{Appended, Claimable, DocumentEntry, Inbound, Outgoing, StreamId};
use super::*;

const SETTINGS: Settings = Settings {
    identify_timeout: Duration::from_secs(5),
    ping_interval: Duration::from_secs(10),
    ack_timeout: Duration::from_secs(5),
    heartbeat_interval: Duration::from_secs(20),
    world_user_connections: 2,
    max_document_bytes: 1 << 20,
};

/// One node: its router, and the records it has not handed on yet.
struct Node {
    id: &'static str,
    router: Router,
    now: Instant,
    /// Records taken from the router but not handed on yet.
    held: Vec<Outgoing>,
}

impl Node {
    fn new(id: &'static str) -> Node {
        Node {
            id,
            router: Router::new(SETTINGS).with_cluster(id.to_string()),
            now: Instant::now(),
            held: Vec::new(),
        }
    }

    fn handle(&mut self, command: Command) -> Vec<Delivery> {
        self.router.handle(command, self.now)
    }

    fn news(&mut self, inbound: Inbound) -> Vec<Delivery> {
        self.handle(Command::Cluster(Box::new(inbound)))
    }

    fn open(&mut self, conn: u64, dialect: Dialect) {
        let conn = ConnId(conn);
        self.handle(Command::Open { conn, dialect });
    }

    /// Identifies `conn` as `name`; Redis grants it. Returns the uuid.
    fn join(&mut self, conn: u64, name: &str) -> Uuid {
        self.open(conn, Dialect::Concierge);
        let asked = self.handle(Command::Identify {
            conn: ConnId(conn),
            name: name.into(),
            nickname: None,
            tags: Vec::new(),
        });
        assert!(asked.is_empty(), "nothing before Redis answers: {asked:?}");
        let (claims, others): (Vec<Outgoing>, Vec<Outgoing>) = self
            .router
            .take_outgoing()
            .into_iter()
            .partition(|r| matches!(r, Outgoing::Claim { .. }));
        self.held.extend(others);
        assert!(
            matches!(&claims[..], [Outgoing::Claim { conn: c, claim: Claimable::Name(n) }] if *c == ConnId(conn) && n == name),
            "{claims:?}"
        );
        let granted = Inbound::Claimed {
            conn: ConnId(conn),
            granted: true,
        };
        match &self.news(granted)[..] {
            [Delivery {
                event: Event::Welcome { uuid },
                ..
            }] => *uuid,
            other => panic!("{other:?}"),
        }
    }

    /// GROUP_CREATE by `conn`, and Redis's answer to its claim.
    fn create_group(&mut self, conn: u64, group: &str, granted: bool) -> Vec<Delivery> {
        let create = Request::CreateTopic {
            topic: group.into(),
            nickname: None,
        };
        assert!(
            self.ask(conn, create).is_empty(),
            "nothing before Redis answers"
        );
        let (claims, others): (Vec<Outgoing>, Vec<Outgoing>) = self
            .router
            .take_outgoing()
            .into_iter()
            .partition(|r| matches!(r, Outgoing::Claim { .. }));
        self.held.extend(others);
        assert!(
            matches!(&claims[..], [Outgoing::Claim { claim: Claimable::Group(g), .. }] if g == group),
            "{claims:?}"
        );
        self.news(Inbound::Claimed {
            conn: ConnId(conn),
            granted,
        })
    }

    fn ask(&mut self, conn: u64, request: Request) -> Vec<Delivery> {
        self.handle(Command::Request {
            conn: ConnId(conn),
            seq: 0,
            request,
        })
    }

    /// Hands this node's bus records to `other`; returns what they caused
    /// there. Other records (claims, documents) are returned to the test.
    fn relay(&mut self, other: &mut Node) -> (Vec<Delivery>, Vec<Outgoing>) {
        let mut out = Vec::new();
        let mut rest = Vec::new();
        let held = std::mem::take(&mut self.held);
        for record in held.into_iter().chain(self.router.take_outgoing()) {
            match record {
                Outgoing::Publish(record) => out.extend(other.news(Inbound::Bus {
                    from: self.id.to_string(),
                    record,
                    received: Instant::now(),
                })),
                other => rest.push(other),
            }
        }
        (out, rest)
    }

    fn client_names(&mut self, conn: u64) -> Vec<String> {
        match &self.ask(conn, Request::FetchClients)[..] {
            [Delivery {
                event: Event::Clients { clients, .. },
                ..
            }] => clients.iter().map(|c| c.name.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }
}

/// The deliveries that reach real connections (shadows' frames go nowhere).
fn real(deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries
        .into_iter()
        .filter_map(|mut d| {
            d.to.retain(|c| !c.is_shadow());
            (!d.to.is_empty()).then_some(d)
        })
        .collect()
}

fn data(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.into()).unwrap()
}

#[test]
fn a_name_redis_refuses_is_taken_and_a_late_grant_is_given_back() {
    let mut a = Node::new("a");
    a.open(1, Dialect::Concierge);
    let identify = |conn| Command::Identify {
        conn: ConnId(conn),
        name: "ann".into(),
        nickname: None,
        tags: Vec::new(),
    };
    a.handle(identify(1));
    a.router.take_outgoing();
    let refused = a.news(Inbound::Claimed {
        conn: ConnId(1),
        granted: false,
    });
    assert!(
        matches!(&refused[..], [Delivery { event: Event::Disconnect(Disconnect::NameTaken(n)), .. }] if n == "ann"),
        "{refused:?}"
    );
    // A connection gone before Redis answered: the granted name goes back.
    a.open(2, Dialect::Concierge);
    a.handle(identify(2));
    a.router.take_outgoing();
    a.handle(Command::Closed { conn: ConnId(2) });
    let late = a.news(Inbound::Claimed {
        conn: ConnId(2),
        granted: true,
    });
    assert!(late.is_empty());
    let released = a.router.take_outgoing();
    assert!(
        released
            .iter()
            .any(|r| matches!(r, Outgoing::Release { claim: Claimable::Name(n) } if n == "ann")),
        "{released:?}"
    );
}

#[test]
fn members_of_another_node_are_listed_and_reached_through_their_node() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    let ann = a.join(1, "ann");
    assert!(real(a.relay(&mut b).0).is_empty());
    let bob = b.join(1, "bob");
    b.relay(&mut a);
    assert_eq!(a.client_names(1), ["ann", "bob"]);
    assert_eq!(b.client_names(1), ["ann", "bob"]);

    // ann, on a, to bob: a answers ann; b delivers to bob with ann's uuid.
    let send = Request::Send {
        target: Target::Name("bob".into()),
        data: data(r#"{"hi":1}"#),
    };
    let here = real(a.ask(1, send));
    assert!(
        matches!(&here[..], [Delivery { event: Event::Sent { .. }, to }] if to == &[ConnId(1)]),
        "{here:?}"
    );
    let there = real(a.relay(&mut b).0);
    match &there[..] {
        [Delivery {
            to,
            event: Event::Message(message),
        }] => {
            assert_eq!(to, &[ConnId(1)]);
            let Origin::Client(origin) = &message.origin else {
                panic!("{message:?}")
            };
            assert_eq!((origin.name.as_str(), origin.uuid), ("ann", ann));
            assert_eq!(message.data.get(), r#"{"hi":1}"#);
        }
        other => panic!("{other:?}"),
    }
    assert_ne!(ann, bob);
}

#[test]
fn a_gone_node_takes_its_members_and_their_groups_with_it() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    a.join(1, "ann");
    a.relay(&mut b);
    b.join(1, "bob");
    b.relay(&mut a);
    b.create_group(1, "g", true);
    let announced = real(b.relay(&mut a).0);
    assert!(
        announced.iter().any(|d| matches!(
            &d.event,
            Event::TopicChanged { change: TopicChange::Created, seq: None, topic } if topic.name == "g"
        ) && d.to == [ConnId(1)]),
        "{announced:?}"
    );
    a.ask(1, Request::Subscribe { topic: "g".into() });

    let checked = Instant::now();
    let gone = real(a.news(Inbound::LiveNodes {
        nodes: Vec::new(),
        checked,
    }));
    let changes: Vec<TopicChange> = gone
        .iter()
        .filter_map(|d| match &d.event {
            Event::TopicChanged { change, .. } => Some(*change),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [TopicChange::Unsubscribed, TopicChange::Deleted]);
    assert_eq!(a.client_names(1), ["ann"]);
    assert_eq!(a.router.topic_count(), 0);
}

#[test]
fn an_announce_replaces_what_was_known_of_a_node() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    b.join(1, "bob");
    b.join(2, "bea");
    a.join(1, "ann");
    b.relay(&mut a);
    assert_eq!(a.client_names(1), ["ann", "bea", "bob"]);
    // b's hello: a announces itself; b forgets nobody.
    b.router.take_outgoing();
    a.news(Inbound::Bus {
        from: "b".into(),
        record: super::cluster::Record::Hello,
        received: Instant::now(),
    });
    a.relay(&mut b);
    assert_eq!(b.client_names(1), ["ann", "bea", "bob"]);
    // b announces only bob (bea left while the bus was down).
    b.handle(Command::Closed { conn: ConnId(2) });
    b.router.take_outgoing();
    b.news(Inbound::Connected);
    let (_, rest) = b.relay(&mut a);
    assert!(
        matches!(&rest[..], [Outgoing::Reclaim { claims }] if claims == &[Claimable::Name("bob".into())]),
        "only bob's name to claim again: {rest:?}"
    );
    assert_eq!(a.client_names(1), ["ann", "bob"]);
}

/// Opens a blazing editor of `computer` on `node`.
fn edit_on(node: &mut Node, conn: u64, user: &str, computer: &str) -> Vec<Delivery> {
    node.open(conn, Dialect::Blazing);
    let who = Joiner::Blazing {
        computer: computer.into(),
        user: user.into(),
        display: None,
        token_left: Duration::from_secs(3600),
        grant: Grant::service(),
        stored: Some("on disk".into()),
    };
    node.handle(Command::Join {
        conn: ConnId(conn),
        who: Box::new(who),
    })
}

fn text_of(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .filter_map(|d| match &d.event {
            Event::Document(DocumentEvent::Sync { document, .. }) => {
                Some(document.text.to_string())
            }
            Event::Document(DocumentEvent::Write { text, .. }) => Some(format!("+{text}")),
            _ => None,
        })
        .collect()
}

#[test]
fn document_edits_wait_for_the_stream_and_apply_once_in_its_order() {
    let mut a = Node::new("a");
    assert_eq!(text_of(&edit_on(&mut a, 1, "ann", "pc")), ["on disk"]);
    let follow = a.router.take_outgoing();
    assert!(
        follow.iter().any(
            |r| matches!(r, Outgoing::Follow { computer, text } if computer == "pc" && text == "on disk")
        ),
        "{follow:?}"
    );
    // A write is not applied here: it goes to the stream.
    let write = Edit::Write {
        offset: 0,
        selection: 0,
        text: "A".into(),
        rev: None,
    };
    let out = a.handle(Command::Edit {
        conn: ConnId(1),
        edit: write,
    });
    assert!(out.is_empty(), "{out:?}");
    let appended = a.router.take_outgoing();
    let entry = match &appended[..] {
        [Outgoing::Append { computer, entry }] if computer == "pc" => entry.clone(),
        other => panic!("{other:?}"),
    };
    // The cluster's text replaces this node's copy: the editor resyncs.
    let base = a.news(Inbound::DocumentBase {
        computer: "pc".into(),
        text: "shared".into(),
        id: StreamId { ms: 5, seq: 0 },
        count: 3,
        entries: Vec::new(),
    });
    assert_eq!(text_of(&base), ["shared"]);
    // bob edits pc on node b: a knows him as a shadow.
    let mut b = Node::new("b");
    edit_on(&mut b, 7, "bob", "pc");
    b.relay(&mut a);
    // Another node's write, then ann's own, in the stream's order; a
    // repeated entry is applied once.
    let bob = DocumentEntry {
        node: "b".into(),
        conn: 7,
        user: "bob".into(),
        seq: 1,
        edit: Edit::Write {
            offset: 6,
            selection: 0,
            text: "!".into(),
            rev: None,
        },
        after: None,
    };
    let appended = |ms, seq, number, entry: &DocumentEntry| Appended {
        id: StreamId { ms, seq },
        number,
        entry: entry.clone(),
    };
    let entries = vec![
        appended(6, 0, 4, &bob),
        appended(6, 1, 5, &entry),
        appended(6, 1, 5, &entry),
    ];
    let out = a.news(Inbound::DocumentEntries {
        computer: "pc".into(),
        entries,
    });
    assert_eq!(text_of(&out), ["+!", "+A"]);
    let sync = a.handle(Command::Edit {
        conn: ConnId(1),
        edit: Edit::Sync,
    });
    assert_eq!(text_of(&sync), ["Ashared!"]);
    // bob, on another node, is among the users, his cursor past his "!"
    // and shifted by ann's "A" before it.
    let users = match &sync[..] {
        [Delivery {
            event: Event::Document(DocumentEvent::Sync { users, .. }),
            ..
        }] => users.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(users, [("ann".to_string(), 1), ("bob".to_string(), 8)]);
}

#[test]
fn the_link_queue_is_bounded_in_bytes_and_frees_what_the_link_takes() {
    let (queue, link) = super::cluster::link_queue(2000);
    let follow = |text: &str| Outgoing::Follow {
        computer: "pc".into(),
        text: text.into(),
    };
    let big = "x".repeat(1800);
    assert!(queue.try_send(follow(&big)));
    assert!(!queue.try_send(follow("y")), "over 2000 bytes queued");
    // A claim is never refused: else its client would wait for good.
    let claim = Outgoing::Claim {
        conn: ConnId(1),
        claim: Claimable::Name("ann".into()),
    };
    assert!(queue.try_send(claim), "a claim always goes");
    let soon = Instant::now() + Duration::from_secs(5);
    assert!(matches!(link.recv_deadline(soon), Ok(Outgoing::Follow { text, .. }) if text == big));
    assert!(queue.try_send(follow("y")), "room again once taken");
}

// ---- found in review ----

fn identify(conn: u64, name: &str) -> Command {
    Command::Identify {
        conn: ConnId(conn),
        name: name.into(),
        nickname: None,
        tags: Vec::new(),
    }
}

/// A client gone before Redis answers its claim: the granted name must be
/// given back, or it stays this node's in Redis for as long as it lives.
#[test]
fn a_grant_that_arrives_after_its_connection_left_is_given_back() {
    let mut a = Node::new("a");
    a.open(2, Dialect::Concierge);
    a.handle(identify(2, "ann"));
    a.router.take_outgoing();
    a.handle(Command::Closed { conn: ConnId(2) });
    a.news(Inbound::Claimed {
        conn: ConnId(2),
        granted: true,
    });
    let released = a.router.take_outgoing();
    assert!(
        released
            .iter()
            .any(|r| matches!(r, Outgoing::Release { claim: Claimable::Name(n) } if n == "ann")),
        "granted name never released: {released:?}"
    );
}

/// Two connections of one node identify as the same name at once: the
/// second is refused at once (Redis would grant the node its own name
/// twice), and nothing gives back the name the first now holds.
#[test]
fn a_name_claimed_twice_on_one_node_is_refused_to_the_second_and_kept() {
    let mut a = Node::new("a");
    a.open(1, Dialect::Concierge);
    a.open(2, Dialect::Concierge);
    a.handle(identify(1, "ann"));
    let refused = a.handle(identify(2, "ann"));
    assert!(
        matches!(&refused[..], [Delivery { event: Event::Disconnect(Disconnect::NameTaken(n)), to }] if n == "ann" && to == &[ConnId(2)]),
        "{refused:?}"
    );
    let claims = a.router.take_outgoing();
    assert_eq!(claims.len(), 1, "{claims:?}");
    a.news(Inbound::Claimed {
        conn: ConnId(1),
        granted: true,
    });
    let after = a.router.take_outgoing();
    assert!(
        !after
            .iter()
            .any(|r| matches!(r, Outgoing::Release { claim: Claimable::Name(n) } if n == "ann")),
        "ann (held by conn 1) given back: {after:?}"
    );
}

/// A shadow with the same name as a local member (both nodes granted it
/// while Redis was away): when the shadow leaves, the local member must
/// stay reachable by name.
#[test]
fn a_shadow_leaving_leaves_a_local_member_of_the_same_name_reachable() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    a.join(1, "ann");
    a.join(2, "bob");
    b.join(1, "ann"); // granted alone on b: neither heard of the other yet
    a.relay(&mut b);
    b.relay(&mut a);
    b.handle(Command::Closed { conn: ConnId(1) });
    b.relay(&mut a);
    let send = Request::Send {
        target: Target::Name("ann".into()),
        data: data("1"),
    };
    let out = real(a.ask(2, send));
    assert!(
        out.iter()
            .any(|d| matches!(d.event, Event::Message(_)) && d.to == [ConnId(1)]),
        "local ann unreachable by name after a remote ann left: {out:?}"
    );
}

/// A `Deleted` lost while the writer was away: the next Announce must
/// bring the group list back in line (it lists what the member owns).
#[test]
fn an_announce_removes_groups_the_shadow_no_longer_owns() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    a.join(1, "ann");
    a.relay(&mut b);
    b.join(1, "bob");
    b.create_group(1, "g", true);
    b.relay(&mut a);
    assert_eq!(a.router.topic_count(), 1);
    b.ask(1, Request::DeleteTopic { topic: "g".into() });
    b.router.take_outgoing(); // lost: Redis was away for the writer
    b.news(Inbound::Connected);
    b.relay(&mut a);
    assert_eq!(
        a.router.topic_count(),
        0,
        "g lives on, owned by bob's shadow"
    );
}

/// Two nodes create the same group at once: Redis grants it to one; the
/// other's creator is told it exists, and every node ends with the same
/// owner. Deleting it frees the name.
#[test]
fn a_group_raced_for_on_two_nodes_has_one_owner_everywhere() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    a.join(1, "ann");
    a.relay(&mut b);
    let bob = b.join(1, "bob");
    b.relay(&mut a);
    let won = b.create_group(1, "g", true);
    assert!(
        won.iter().any(|d| matches!(
            &d.event,
            Event::TopicChanged {
                change: TopicChange::Created,
                seq: Some(0),
                ..
            }
        ) && d.to == [ConnId(1)]),
        "{won:?}"
    );
    let lost = a.create_group(1, "g", false);
    assert!(
        matches!(&lost[..], [Delivery { event: Event::Refused { seq: Some(0), error: RequestError::TopicExists(t) }, to }] if t.name == "g" && to == &[ConnId(1)]),
        "{lost:?}"
    );
    b.relay(&mut a);
    a.relay(&mut b);
    for node in [&a, &b] {
        let owner = node
            .router
            .topics
            .get("g")
            .and_then(|t| t.owner)
            .map(|o| o.uuid);
        assert_eq!(owner, Some(bob), "on {}", node.id);
    }
    b.ask(1, Request::DeleteTopic { topic: "g".into() });
    let released = b.router.take_outgoing();
    assert!(
        released
            .iter()
            .any(|r| matches!(r, Outgoing::Release { claim: Claimable::Group(g) } if g == "g")),
        "{released:?}"
    );
}

fn world_join(node: &mut Node, conn: u64, user: &str) -> Vec<Delivery> {
    node.open(conn, Dialect::World);
    let who = Joiner::World {
        world: "w".into(),
        user: user.into(),
        display: None,
        traits: Vec::new(),
        grant: Grant::anonymous(),
        token_left: None,
        id: None,
    };
    node.handle(Command::Join {
        conn: ConnId(conn),
        who: Box::new(who),
    })
}

/// docs/world.md: "--world-user-connections (a user's connections to a world are
/// counted per node)". A user with 2 connections on b connecting once on a
/// must not make a evict b's connections' shadows.
#[test]
fn the_world_user_limit_counts_and_replaces_only_this_nodes_connections() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    world_join(&mut b, 1, "u");
    world_join(&mut b, 2, "u");
    b.relay(&mut a);
    let before = a.client_names_any();
    assert_eq!(before.len(), 2, "{before:?}");
    let out = world_join(&mut a, 1, "u");
    let evicted: Vec<_> = out
        .iter()
        .filter(|d| matches!(d.event, Event::Disconnect(Disconnect::Replaced)))
        .collect();
    assert!(evicted.is_empty(), "a evicted: {evicted:?}");
}

impl Node {
    fn client_names_any(&self) -> Vec<String> {
        self.router
            .conns
            .values()
            .filter_map(|s| match s {
                Conn::Member(m) => Some(m.info.name.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_node_heard_from_after_the_heartbeat_check_is_not_declared_gone() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    a.join(1, "ann");
    let checked = Instant::now();
    b.join(1, "bob");
    b.relay(&mut a); // arrives after the writer looked at b's key
    let live = Inbound::LiveNodes {
        nodes: Vec::new(),
        checked,
    };
    a.news(live);
    assert_eq!(a.client_names(1), ["ann", "bob"]);
    // A later look that still misses b, with nothing heard since: gone.
    let live = Inbound::LiveNodes {
        nodes: Vec::new(),
        checked: Instant::now(),
    };
    a.news(live);
    assert_eq!(a.client_names(1), ["ann"]);
}

#[test]
fn entries_missing_from_a_document_stream_make_the_node_read_its_base_again() {
    let mut a = Node::new("a");
    edit_on(&mut a, 1, "ann", "pc");
    a.router.take_outgoing();
    a.news(Inbound::DocumentBase {
        computer: "pc".into(),
        text: "abc".into(),
        id: StreamId { ms: 1, seq: 0 },
        count: 10,
        entries: Vec::new(),
    });
    let write = |text: &str| DocumentEntry {
        node: "b".into(),
        conn: 7,
        user: "bob".into(),
        seq: 1,
        edit: Edit::Write {
            offset: 0,
            selection: 0,
            text: text.into(),
            rev: None,
        },
        after: None,
    };
    // Entry 12 after 10: 11 was lost (a Redis that restarted empty).
    let gap = vec![Appended {
        id: StreamId { ms: 2, seq: 0 },
        number: 12,
        entry: write("x"),
    }];
    let out = a.news(Inbound::DocumentEntries {
        computer: "pc".into(),
        entries: gap,
    });
    assert!(out.is_empty(), "nothing applied: {out:?}");
    let asked = a.router.take_outgoing();
    assert!(
        matches!(&asked[..], [Outgoing::Follow { computer, text }] if computer == "pc" && text == "abc"),
        "{asked:?}"
    );
    // The base read again: a fresh sync, then the entries after it, as
    // numbered, whatever the gap.
    let again = a.news(Inbound::DocumentBase {
        computer: "pc".into(),
        text: "abcd".into(),
        id: StreamId { ms: 1, seq: 5 },
        count: 11,
        entries: vec![Appended {
            id: StreamId { ms: 2, seq: 0 },
            number: 12,
            entry: write("x"),
        }],
    });
    assert_eq!(text_of(&again), ["abcd", "+x"]);
}

#[test]
fn frames_after_identify_wait_for_the_claim_and_follow_the_welcome() {
    let mut a = Node::new("a");
    a.open(1, Dialect::Concierge);
    a.handle(identify(1, "ann"));
    a.router.take_outgoing();
    // Pipelined before HELLO, as a client may on one node.
    let held = a.ask(1, Request::FetchSelf);
    assert!(held.is_empty(), "held until the name is granted: {held:?}");
    let out = a.news(Inbound::Claimed {
        conn: ConnId(1),
        granted: true,
    });
    let events: Vec<&str> = out
        .iter()
        .map(|d| match &d.event {
            Event::Welcome { .. } => "welcome",
            Event::Myself { .. } => "myself",
            _ => "other",
        })
        .collect();
    assert_eq!(events, ["welcome", "myself"]);
}

// ---- review: findings shown as failing tests ----

/// What Redis holds for one node's claims after `records`, carried out in
/// order as the writer does (CLAIM: set if free or ours; RELEASE: delete
/// if ours). Only this node writes here, so every claim is granted.
fn redis_claims_after(records: &[Outgoing]) -> std::collections::BTreeSet<Claimable> {
    let mut held = std::collections::BTreeSet::new();
    for record in records {
        match record {
            Outgoing::Claim { claim, .. } => {
                held.insert(claim.clone());
            }
            Outgoing::Release { claim } => {
                held.remove(claim);
            }
            Outgoing::Reclaim { claims } => held.extend(claims.iter().cloned()),
            _ => {}
        }
    }
    held
}

fn owner_of(node: &Node, group: &str) -> Option<ConnId> {
    node.router
        .topics
        .get(group)
        .and_then(|t| t.owner)
        .map(|o| o.conn)
}

/// Node a with ann (1) and bob (2), and the records it made so far.
fn ann_and_bob_on_one_node() -> (Node, Vec<Outgoing>) {
    let mut a = Node::new("a");
    a.join(1, "ann");
    a.join(2, "bob");
    let mut records = std::mem::take(&mut a.held);
    records.extend(a.router.take_outgoing());
    (a, records)
}

/// Two members of one node create the same group before Redis answers:
/// the second is refused at once (Redis would grant the node the group
/// twice), and the group's key stays this node's while the first owns it.
#[test]
fn two_members_of_one_node_creating_one_group_leave_its_claim_held() {
    let (mut a, mut records) = ann_and_bob_on_one_node();
    let create = || Request::CreateTopic {
        topic: "g".into(),
        nickname: None,
    };
    a.ask(1, create());
    let second = a.ask(2, create());
    assert!(
        matches!(&second[..], [Delivery { event: Event::Refused { error: RequestError::TopicExists(_), .. }, to }] if to == &[ConnId(2)]),
        "bob is refused: {second:?}"
    );
    records.extend(a.router.take_outgoing());
    a.news(Inbound::Claimed {
        conn: ConnId(1),
        granted: true,
    });
    records.extend(a.router.take_outgoing());
    assert_eq!(owner_of(&a, "g"), Some(ConnId(1)), "ann owns g");
    assert!(
        redis_claims_after(&records).contains(&Claimable::Group("g".into())),
        "the group key was released while ann owns g: {records:?}"
    );
}

/// A member leaves while its group's claim is pending: another member's
/// GROUP_CREATE waits its turn (refused meanwhile), the late grant is
/// given back, and the group can then be created.
#[test]
fn a_late_group_grant_for_a_member_gone_is_given_back() {
    let (mut a, mut records) = ann_and_bob_on_one_node();
    let create = || Request::CreateTopic {
        topic: "g".into(),
        nickname: None,
    };
    a.ask(1, create());
    a.handle(Command::Closed { conn: ConnId(1) }); // ann leaves, claim pending
    assert!(!a.ask(2, create()).is_empty(), "bob refused meanwhile");
    records.extend(a.router.take_outgoing());
    a.news(Inbound::Claimed {
        conn: ConnId(1),
        granted: true,
    });
    records.extend(a.router.take_outgoing());
    assert_eq!(owner_of(&a, "g"), None);
    assert!(
        !redis_claims_after(&records).contains(&Claimable::Group("g".into())),
        "ann's late grant given back: {records:?}"
    );
    a.create_group(2, "g", true);
    assert_eq!(owner_of(&a, "g"), Some(ConnId(2)), "bob owns g");
}

#[test]
fn a_move_read_after_its_user_left_leaves_no_cursor_behind() {
    let (mut a, mut b) = (Node::new("a"), Node::new("b"));
    edit_on(&mut a, 1, "ann", "pc");
    a.router.take_outgoing();
    a.news(Inbound::DocumentBase {
        computer: "pc".into(),
        text: "abc".into(),
        id: StreamId { ms: 1, seq: 0 },
        count: 0,
        entries: Vec::new(),
    });
    // bob edits pc on b, moves, and leaves; the bus (his Left) is faster
    // than a's stream read of his move.
    edit_on(&mut b, 7, "bob", "pc");
    b.relay(&mut a);
    b.handle(Command::Closed { conn: ConnId(7) });
    b.relay(&mut a);
    let moved = Appended {
        id: StreamId { ms: 2, seq: 0 },
        number: 1,
        entry: DocumentEntry {
            node: "b".into(),
            conn: 7,
            user: "bob".into(),
            seq: 1,
            edit: Edit::Move {
                offset: 2,
                selection: 0,
                rev: None,
            },
            after: None,
        },
    };
    a.news(Inbound::DocumentEntries {
        computer: "pc".into(),
        entries: vec![moved],
    });
    let sync = a.handle(Command::Edit {
        conn: ConnId(1),
        edit: Edit::Sync,
    });
    let users = match &sync[..] {
        [Delivery {
            event: Event::Document(DocumentEvent::Sync { users, .. }),
            ..
        }] => users.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(users, [("ann".to_string(), 0)], "bob left every node");
}
