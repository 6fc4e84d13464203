//! Router rules, checked without sockets or clocks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::*;
use crate::router::command::Edit;

const TIMEOUT: Duration = Duration::from_secs(5);
const SETTINGS: Settings = Settings {
    identify_timeout: TIMEOUT,
    ping_interval: Duration::from_secs(10),
    ack_timeout: Duration::from_secs(5),
    heartbeat_interval: Duration::from_secs(20),
    world_user_connections: 2,
    max_document_bytes: 1 << 20,
};

struct Hub {
    router: Router,
    start: Instant,
}

impl Hub {
    fn new() -> Hub {
        Hub {
            router: Router::new(SETTINGS),
            start: Instant::now(),
        }
    }

    fn at(&mut self, command: Command, secs: u64) -> Vec<Delivery> {
        self.router
            .handle(command, self.start + Duration::from_secs(secs))
    }

    fn open(&mut self, conn: u64) {
        let open = Command::Open {
            conn: ConnId(conn),
            dialect: Dialect::Concierge,
        };
        assert!(self.at(open, 0).is_empty());
    }

    /// Opens and identifies `conn` as `name`; returns its uuid.
    fn join(&mut self, conn: u64, name: &str) -> Uuid {
        self.open(conn);
        let out = self.identify(conn, name);
        match &out[..] {
            [Delivery {
                to,
                event: Event::Welcome { uuid },
            }] if to == &[ConnId(conn)] => *uuid,
            other => panic!("{other:?}"),
        }
    }

    /// Subscribes `conn` to the topic `name`, the answer unread.
    fn subscribe(&mut self, conn: u64, name: &str) {
        self.ask(conn, 0, Request::Subscribe { topic: topic(name) });
    }

    fn identify(&mut self, conn: u64, name: &str) -> Vec<Delivery> {
        let identify = Command::Identify {
            conn: ConnId(conn),
            name: name.into(),
            nickname: None,
            tags: vec!["t".into()],
        };
        self.at(identify, 1)
    }

    fn ask(&mut self, conn: u64, seq: Seq, request: Request) -> Vec<Delivery> {
        self.at(
            Command::Request {
                conn: ConnId(conn),
                seq,
                request,
            },
            2,
        )
    }

    fn close(&mut self, conn: u64) -> Vec<Delivery> {
        self.at(Command::Closed { conn: ConnId(conn) }, 3)
    }
}

fn data(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.into()).unwrap()
}

fn to(ids: &[u64]) -> Vec<ConnId> {
    ids.iter().map(|&id| ConnId(id)).collect()
}

fn sorted(mut conns: Vec<ConnId>) -> Vec<ConnId> {
    conns.sort();
    conns
}

fn topic(name: &str) -> String {
    name.to_string()
}

#[test]
fn identify_welcomes_unique_names_and_refuses_duplicates() {
    let mut hub = Hub::new();
    let ann = hub.join(1, "ann");
    let bob = hub.join(2, "bob");
    assert_ne!(ann, bob);
    hub.open(3);
    let out = hub.identify(3, "ann");
    assert!(
        matches!(&out[..], [Delivery { event: Event::Disconnect(Disconnect::NameTaken(n)), .. }] if n == "ann")
    );
    // The refused connection is forgotten: a later request gets no answer.
    assert!(hub.ask(3, 0, Request::FetchSelf).is_empty());
    // A name is free again once its holder leaves.
    hub.close(1);
    hub.join(4, "ann");
}

#[test]
fn identify_deadline_expires_only_unidentified_connections() {
    let mut hub = Hub::new();
    hub.open(1);
    hub.join(2, "bob");
    assert_eq!(hub.router.next_deadline(), Some(hub.start + TIMEOUT));
    assert!(hub
        .router
        .expire(hub.start + TIMEOUT - Duration::from_millis(1))
        .is_empty());
    let out = hub.router.expire(hub.start + TIMEOUT);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, to(&[1]));
    assert!(matches!(
        out[0].event,
        Event::Disconnect(Disconnect::IdentifyTimeout)
    ));
    assert_eq!(hub.router.next_deadline(), None);
    // The expired connection is no longer a member.
    assert!(hub.ask(1, 0, Request::FetchSelf).is_empty());
}

#[test]
fn closing_before_identify_clears_the_deadline() {
    let mut hub = Hub::new();
    hub.open(1);
    assert!(hub.close(1).is_empty());
    assert_eq!(hub.router.next_deadline(), None);
}

#[test]
fn message_to_name_and_uuid_reaches_one_client_with_origin() {
    let mut hub = Hub::new();
    let ann = hub.join(1, "ann");
    let bob = hub.join(2, "bob");
    let out = hub.ask(
        1,
        0,
        Request::Send {
            target: Target::Name("bob".into()),
            data: data(r#"{"a":1}"#),
        },
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].to, to(&[2]));
    let Event::Message(message) = &out[0].event else {
        panic!("{out:?}")
    };
    let Origin::Client(origin) = &message.origin else {
        panic!("{message:?}")
    };
    assert_eq!(origin.uuid, ann);
    assert_eq!(origin.name, "ann");
    assert_eq!(message.data.get(), r#"{"a":1}"#);
    assert!(message.topic.is_none());
    assert_eq!(out[1].to, to(&[1]));
    assert!(matches!(out[1].event, Event::Sent { seq: 0 }));

    let out = hub.ask(
        2,
        5,
        Request::Send {
            target: Target::Uuid(ann.to_string().to_uppercase()),
            data: data("1"),
        },
    );
    assert_eq!(out[0].to, to(&[1]));
    assert!(matches!(out[1].event, Event::Sent { seq: 5 }));
    let _ = bob;
}

#[test]
fn unknown_targets_are_refused_with_the_name_given() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    let cases = [
        (
            Target::Name("zed".into()),
            RequestError::NoSuchName("zed".into()),
        ),
        (
            Target::Uuid("not-a-uuid".into()),
            RequestError::NoSuchUuid("not-a-uuid".into()),
        ),
        (
            Target::Uuid(Uuid::new_v4().unwrap().to_string()),
            RequestError::NoSuchUuid(String::new()),
        ),
        (
            Target::Topic("g".into()),
            RequestError::NoSuchTopic("g".into()),
        ),
    ];
    for (seq, (target, expected)) in cases.into_iter().enumerate() {
        let seq = seq as Seq;
        let out = hub.ask(
            1,
            seq,
            Request::Send {
                target: target.clone(),
                data: data("0"),
            },
        );
        assert_eq!(out.len(), 1);
        match (&out[0].event, expected) {
            (
                Event::Refused {
                    seq: s,
                    error: RequestError::NoSuchUuid(_),
                },
                RequestError::NoSuchUuid(e),
            ) if e.is_empty() => assert_eq!(*s, Some(seq)),
            (Event::Refused { seq: s, error }, expected) => {
                assert_eq!(*s, Some(seq));
                assert_eq!(error, &expected);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn group_messages_fan_out_to_every_subscriber_the_sender_included() {
    let mut hub = Hub::new();
    let ann = hub.join(1, "ann");
    let bob = hub.join(2, "bob");
    hub.join(3, "cat");
    hub.join(4, "dan");
    hub.ask(
        1,
        0,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: Some("G".into()),
        },
    );
    hub.subscribe(1, "g");
    hub.subscribe(2, "g");
    hub.subscribe(3, "g");
    let out = hub.ask(
        1,
        1,
        Request::Send {
            target: Target::Topic("g".into()),
            data: data("[1]"),
        },
    );
    // As the original server: the sender hears its own line come back.
    assert_eq!(sorted(out[0].to.clone()), to(&[1, 2, 3]));
    let Event::Message(message) = &out[0].event else {
        panic!()
    };
    let group = message.topic.as_ref().unwrap();
    assert_eq!(group.name, "g");
    assert_eq!(group.nickname.as_deref(), Some("G"));
    assert_eq!(group.owner, Some(ann));
    assert_eq!(group.subscribers.len(), 3);
    assert!(group.subscribers.contains(&bob));
    assert!(matches!(out[1].event, Event::Sent { seq: 1 }));
    // A sender that is not subscribed is not a recipient.
    let out = hub.ask(
        4,
        0,
        Request::Send {
            target: Target::Topic("g".into()),
            data: data("[2]"),
        },
    );
    assert_eq!(sorted(out[0].to.clone()), to(&[1, 2, 3]));
}

#[test]
fn message_to_all_reaches_every_identified_client_the_sender_included() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    hub.join(2, "bob");
    hub.join(3, "cat");
    hub.open(4); // not identified: not part of ALL
    let out = hub.ask(
        2,
        0,
        Request::Send {
            target: Target::All,
            data: data("null"),
        },
    );
    assert_eq!(sorted(out[0].to.clone()), to(&[1, 2, 3]));
}

#[test]
fn create_does_not_subscribe_the_creator_and_tells_everyone_else_without_seq() {
    let mut hub = Hub::new();
    let ann = hub.join(1, "ann");
    hub.join(2, "bob");
    let out = hub.ask(
        1,
        7,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: None,
        },
    );
    assert_eq!(out.len(), 2);
    match &out[0] {
        Delivery {
            to: t,
            event:
                Event::TopicChanged {
                    seq: Some(7),
                    change: TopicChange::Created,
                    topic,
                },
        } => {
            assert_eq!(t, &to(&[1]));
            assert_eq!(topic.owner, Some(ann));
            // The original server does not subscribe the creator; its
            // clients SELF_SUBSCRIBE after GROUP_CREATED.
            assert_eq!(topic.subscribers, vec![]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&out[1], Delivery { to: t, event: Event::TopicChanged { seq: None, change: TopicChange::Created, .. } } if t == &to(&[2]))
    );
    let out = hub.ask(
        2,
        0,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: None,
        },
    );
    assert!(
        matches!(&out[0].event, Event::Refused { seq: Some(0), error: RequestError::TopicExists(info) } if info.owner == Some(ann))
    );
}

#[test]
fn subscribe_and_unsubscribe_need_an_existing_group_and_show_in_self_fetch() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    let bob = hub.join(2, "bob");
    let out = hub.ask(2, 0, Request::Subscribe { topic: topic("g") });
    assert!(
        matches!(&out[0].event, Event::Refused { error: RequestError::NoSuchTopic(g), .. } if g == "g")
    );
    hub.ask(
        1,
        0,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: None,
        },
    );
    let out = hub.ask(2, 1, Request::Subscribe { topic: topic("g") });
    assert!(
        matches!(&out[0].event, Event::TopicChanged { seq: Some(1), change: TopicChange::Subscribed, topic } if topic.subscribers.contains(&bob))
    );
    let out = hub.ask(2, 2, Request::FetchSelf);
    assert!(
        matches!(&out[0].event, Event::Myself { seq: 2, subscriptions, client } if subscriptions == &["g"] && client.name == "bob")
    );
    let out = hub.ask(2, 3, Request::Unsubscribe { topic: topic("g") });
    assert!(
        matches!(&out[0].event, Event::TopicChanged { seq: Some(3), change: TopicChange::Unsubscribed, topic } if !topic.subscribers.contains(&bob))
    );
    let out = hub.ask(2, 4, Request::FetchSelf);
    assert!(
        matches!(&out[0].event, Event::Myself { subscriptions, .. } if subscriptions.is_empty())
    );
    let out = hub.ask(
        2,
        5,
        Request::Unsubscribe {
            topic: topic("nope"),
        },
    );
    assert!(matches!(
        &out[0].event,
        Event::Refused {
            seq: Some(5),
            error: RequestError::NoSuchTopic(_)
        }
    ));
}

#[test]
fn only_the_owner_deletes_and_subscribers_hear_of_it() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    hub.join(2, "bob");
    hub.join(3, "cat");
    hub.ask(
        1,
        0,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: None,
        },
    );
    hub.subscribe(1, "g");
    hub.subscribe(2, "g");
    let out = hub.ask(2, 1, Request::DeleteTopic { topic: topic("g") });
    assert!(
        matches!(&out[0].event, Event::Refused { seq: Some(1), error: RequestError::NotOwner(g) } if g == "g")
    );
    let out = hub.ask(1, 1, Request::DeleteTopic { topic: topic("g") });
    let summary: Vec<(Vec<ConnId>, Option<Seq>, TopicChange)> = out
        .iter()
        .map(|d| match &d.event {
            Event::TopicChanged { seq, change, .. } => (sorted(d.to.clone()), *seq, *change),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (to(&[1]), Some(1), TopicChange::Unsubscribed),
            (to(&[2]), None, TopicChange::Unsubscribed),
            (to(&[1]), Some(1), TopicChange::Deleted),
            (to(&[2, 3]), None, TopicChange::Deleted),
        ]
    );
    let out = hub.ask(2, 2, Request::FetchSelf);
    assert!(
        matches!(&out[0].event, Event::Myself { subscriptions, .. } if subscriptions.is_empty())
    );
    let out = hub.ask(1, 2, Request::FetchTopics);
    assert!(matches!(&out[0].event, Event::Topics { topics, .. } if topics.is_empty()));
}

#[test]
fn owner_leaving_deletes_its_groups() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    hub.join(2, "bob");
    hub.join(3, "cat");
    hub.ask(
        1,
        0,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: None,
        },
    );
    hub.ask(
        1,
        1,
        Request::CreateTopic {
            topic: topic("h"),
            nickname: None,
        },
    );
    hub.subscribe(2, "g");
    let out = hub.close(1);
    let summary: Vec<(String, Vec<ConnId>, TopicChange)> = out
        .iter()
        .map(|d| match &d.event {
            Event::TopicChanged {
                seq: None,
                change,
                topic,
            } => (topic.name.clone(), sorted(d.to.clone()), *change),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("g".into(), to(&[2]), TopicChange::Unsubscribed),
            ("g".into(), to(&[2, 3]), TopicChange::Deleted),
            ("h".into(), to(&[2, 3]), TopicChange::Deleted),
        ]
    );
    let out = hub.ask(2, 1, Request::FetchTopics);
    assert!(matches!(&out[0].event, Event::Topics { topics, .. } if topics.is_empty()));
}

#[test]
fn leaving_subscriber_is_removed_from_groups() {
    let mut hub = Hub::new();
    let ann = hub.join(1, "ann");
    hub.join(2, "bob");
    hub.ask(
        1,
        0,
        Request::CreateTopic {
            topic: topic("g"),
            nickname: None,
        },
    );
    hub.subscribe(1, "g");
    hub.subscribe(2, "g");
    assert!(hub.close(2).is_empty());
    let out = hub.ask(1, 1, Request::FetchTopic { topic: topic("g") });
    assert!(
        matches!(&out[0].event, Event::Topic { seq: 1, topic } if topic.subscribers == vec![ann])
    );
}

#[test]
fn fetches_list_clients_and_groups_in_name_order() {
    let mut hub = Hub::new();
    hub.join(1, "zoe");
    hub.join(2, "amy");
    hub.open(3);
    hub.ask(
        1,
        0,
        Request::CreateTopic {
            topic: topic("b"),
            nickname: None,
        },
    );
    hub.ask(
        2,
        0,
        Request::CreateTopic {
            topic: topic("a"),
            nickname: None,
        },
    );
    let out = hub.ask(1, 1, Request::FetchClients);
    let Event::Clients { seq: 1, clients } = &out[0].event else {
        panic!()
    };
    let names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["amy", "zoe"]);
    assert_eq!(clients[0].tags, ["t"]);
    let out = hub.ask(1, 2, Request::FetchTopics);
    let Event::Topics { seq: 2, topics } = &out[0].event else {
        panic!()
    };
    let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let out = hub.ask(1, 3, Request::FetchTopic { topic: topic("c") });
    assert!(matches!(
        &out[0].event,
        Event::Refused {
            seq: Some(3),
            error: RequestError::NoSuchTopic(_)
        }
    ));
}

#[test]
fn invalid_requests_are_answered_with_their_seq() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    let out = hub.ask(
        1,
        9,
        Request::Invalid(RequestError::Unsupported("HELLO".into())),
    );
    assert_eq!(out[0].to, to(&[1]));
    assert!(
        matches!(&out[0].event, Event::Refused { seq: Some(9), error: RequestError::Unsupported(k) } if k == "HELLO")
    );
}

#[test]
fn requests_from_unknown_or_unidentified_connections_are_ignored() {
    let mut hub = Hub::new();
    hub.open(1);
    assert!(hub.ask(1, 0, Request::FetchClients).is_empty());
    assert!(hub.ask(99, 0, Request::FetchClients).is_empty());
    assert!(hub.close(99).is_empty());
}

#[test]
fn rejections_of_unnumbered_frames_carry_no_seq_and_need_identification() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    hub.open(2);
    let reject = |conn| Command::Reject {
        conn: ConnId(conn),
        error: RequestError::Malformed("binary".into()),
    };
    let out = hub.at(reject(1), 2);
    assert_eq!(out[0].to, to(&[1]));
    assert!(
        matches!(&out[0].event, Event::Refused { seq: None, error: RequestError::Malformed(why) } if why == "binary")
    );
    assert!(hub.at(reject(2), 2).is_empty());
}

// --- channels and the shared namespace --------------------------------------

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.into()).unwrap()
}

impl Hub {
    /// Opens `conn` as a channels listener of `topic`; returns its client id.
    fn listen(&mut self, conn: u64, topic: &str, presence: &str) -> String {
        let open = Command::Open {
            conn: ConnId(conn),
            dialect: Dialect::Channels,
        };
        assert!(self.at(open, 0).is_empty());
        let listen = Command::Listen {
            conn: ConnId(conn),
            topic: topic.into(),
            presence: raw(presence),
            grant: Grant::anonymous(),
            token_left: None,
        };
        let out = self.at(listen, 1);
        assert!(
            matches!(&out[0], Delivery { to, event: Event::Connected { .. } } if to == &[ConnId(conn)]),
            "{out:?}"
        );
        self.router
            .addressee(ConnId(conn))
            .unwrap()
            .client_id
            .to_string()
    }

    fn emit(
        &mut self,
        topic: &str,
        targets: Targets,
        require_ack: bool,
        secs: u64,
    ) -> (Vec<Delivery>, crossbeam_channel::Receiver<EmitOutcome>) {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let emit = Emit {
            topic: topic.into(),
            payload: raw(r#"{"n":1}"#),
            targets,
            require_ack,
            reply,
            grant: Grant::anonymous(),
        };
        (self.at(Command::Emit(Box::new(emit)), secs), answer)
    }
}

fn presence_events(out: &[Delivery]) -> Vec<(Vec<ConnId>, PresenceChange, String)> {
    out.iter()
        .filter_map(|d| match &d.event {
            Event::Presence { change, member } => {
                Some((sorted(d.to.clone()), *change, member.client_id.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn listeners_get_the_others_and_are_announced_to_them() {
    let mut hub = Hub::new();
    let a = hub.listen(1, "room", r#"{"username":"a"}"#);
    assert!(a.starts_with("client_") && a.len() == 15, "{a}");
    let (reply_to_b, _) = (2, ());
    let open = Command::Open {
        conn: ConnId(reply_to_b),
        dialect: Dialect::Channels,
    };
    hub.at(open, 0);
    let out = hub.at(
        Command::Listen {
            conn: ConnId(2),
            topic: "room".into(),
            presence: raw(r#"{"username":"b"}"#),
            grant: Grant::anonymous(),
            token_left: None,
        },
        1,
    );
    let Event::Connected { members } = &out[0].event else {
        panic!("{out:?}")
    };
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_id, a);
    assert_eq!(members[0].presence.get(), r#"{"username":"a"}"#);
    let b = hub
        .router
        .addressee(ConnId(2))
        .unwrap()
        .client_id
        .to_string();
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1]), PresenceChange::Joined, b.clone())]
    );
    // Another channel's listener hears nothing of them.
    hub.listen(3, "elsewhere", "{}");
    let out = hub.at(
        Command::UpdatePresence {
            conn: ConnId(2),
            presence: raw(r#"{"username":"B"}"#),
            echo: false,
        },
        2,
    );
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1]), PresenceChange::Updated, b.clone())]
    );
    // With `echo` (the channels dialect's choice) the updater hears too.
    let out = hub.at(
        Command::UpdatePresence {
            conn: ConnId(2),
            presence: raw(r#"{"username":"b"}"#),
            echo: true,
        },
        2,
    );
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1, 2]), PresenceChange::Updated, b.clone())]
    );
    let out = hub.close(2);
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1]), PresenceChange::Left, b)]
    );
}

#[test]
fn a_channel_is_an_ownerless_group_until_someone_creates_it() {
    let mut hub = Hub::new();
    hub.listen(1, "room", "{}");
    let ann = hub.join(2, "ann");
    let out = hub.ask(
        2,
        0,
        Request::FetchTopic {
            topic: topic("room"),
        },
    );
    assert!(
        matches!(&out[0].event, Event::Topic { topic, .. } if topic.owner.is_none() && topic.subscribers.len() == 1)
    );
    let out = hub.ask(
        2,
        1,
        Request::CreateTopic {
            topic: topic("room"),
            nickname: Some("Room".into()),
        },
    );
    assert!(
        matches!(&out[0].event, Event::TopicChanged { seq: Some(1), change: TopicChange::Created, topic } if topic.owner == Some(ann) && topic.subscribers.len() == 1)
    );
    // Taking ownership does not subscribe; subscribing is seen by the
    // listeners.
    assert!(presence_events(&out).is_empty());
    let out = hub.ask(
        2,
        2,
        Request::Subscribe {
            topic: topic("room"),
        },
    );
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1]), PresenceChange::Joined, "ann".to_string())]
    );
    // The owner leaving deletes the group but not the channel.
    let out = hub.close(2);
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1]), PresenceChange::Left, "ann".to_string())]
    );
    hub.join(3, "bob");
    let out = hub.ask(3, 0, Request::FetchTopics);
    assert!(
        matches!(&out[0].event, Event::Topics { topics, .. } if topics.len() == 1 && topics[0].owner.is_none() && topics[0].nickname.is_none())
    );
    // The last listener leaving removes the topic.
    hub.close(1);
    let out = hub.ask(3, 1, Request::FetchTopics);
    assert!(matches!(&out[0].event, Event::Topics { topics, .. } if topics.is_empty()));
}

#[test]
fn a_concierge_unsubscribing_from_an_ownerless_topic_removes_it_when_empty() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    hub.listen(2, "room", "{}");
    hub.subscribe(1, "room");
    hub.close(2);
    hub.ask(
        1,
        1,
        Request::Unsubscribe {
            topic: topic("room"),
        },
    );
    let out = hub.ask(1, 2, Request::FetchTopics);
    assert!(matches!(&out[0].event, Event::Topics { topics, .. } if topics.is_empty()));
}

#[test]
fn emits_reach_all_some_or_named_subscribers_or_are_refused() {
    let mut hub = Hub::new();
    let a = hub.listen(1, "room", "{}");
    let b = hub.listen(2, "room", "{}");
    hub.join(3, "ann");
    hub.subscribe(3, "room");

    let (out, answer) = hub.emit("room", Targets::All, false, 2);
    assert_eq!(sorted(out[0].to.clone()), to(&[1, 2, 3]));
    let Event::Message(message) = &out[0].event else {
        panic!()
    };
    assert_eq!(message.origin, Origin::Http);
    assert!(message.event_id.starts_with("evt_"));
    assert!(
        matches!(answer.try_recv().unwrap(), EmitOutcome::Sent { targeted, .. } if targeted.len() == 3)
    );

    // `clients=N` picks among the channels listeners only.
    let (out, answer) = hub.emit("room", Targets::Random(2), false, 2);
    assert_eq!(sorted(out[0].to.clone()), to(&[1, 2]));
    assert!(
        matches!(answer.try_recv().unwrap(), EmitOutcome::Sent { targeted, .. } if targeted.len() == 2)
    );

    let (out, answer) = hub.emit("room", Targets::Random(3), false, 2);
    assert!(out.is_empty());
    assert_eq!(
        answer.try_recv().unwrap(),
        EmitOutcome::Refused(EmitError::TooFewListeners {
            wanted: 3,
            listening: 2
        })
    );

    let (out, answer) = hub.emit("room", Targets::Named(vec![b.clone(), b.clone()]), false, 2);
    assert_eq!(out[0].to, to(&[2]));
    assert!(
        matches!(answer.try_recv().unwrap(), EmitOutcome::Sent { targeted, .. } if targeted == vec![b.clone()])
    );

    // A concierge subscriber is no listener to name.
    let (out, answer) = hub.emit(
        "room",
        Targets::Named(vec![b.clone(), "ann".into()]),
        false,
        2,
    );
    assert!(out.is_empty());
    assert_eq!(
        answer.try_recv().unwrap(),
        EmitOutcome::Refused(EmitError::UnknownClients(vec!["ann".into()]))
    );

    let (out, answer) = hub.emit("room", Targets::Named(vec![a, "zed".into()]), false, 2);
    assert!(out.is_empty());
    assert_eq!(
        answer.try_recv().unwrap(),
        EmitOutcome::Refused(EmitError::UnknownClients(vec!["zed".into()]))
    );

    let (out, answer) = hub.emit("empty", Targets::All, false, 2);
    assert!(out[0].to.is_empty());
    assert!(
        matches!(answer.try_recv().unwrap(), EmitOutcome::Sent { targeted, .. } if targeted.is_empty())
    );
}

#[test]
fn acked_emits_answer_when_every_channels_target_acked() {
    let mut hub = Hub::new();
    let a = hub.listen(1, "room", "{}");
    let b = hub.listen(2, "room", "{}");
    hub.join(3, "ann");
    hub.subscribe(3, "room");
    let (out, answer) = hub.emit("room", Targets::All, true, 2);
    let Event::Message(message) = &out[0].event else {
        panic!()
    };
    assert!(message.requires_ack);
    let event_id = message.event_id.clone();
    hub.at(
        Command::Ack {
            conn: ConnId(2),
            event_id: event_id.clone(),
        },
        3,
    );
    hub.at(
        Command::Ack {
            conn: ConnId(2),
            event_id: "evt_unknown".into(),
        },
        3,
    );
    assert!(answer.try_recv().is_err(), "still waiting for {a}");
    hub.at(
        Command::Ack {
            conn: ConnId(1),
            event_id: event_id.clone(),
        },
        3,
    );
    assert_eq!(
        answer.try_recv().unwrap(),
        EmitOutcome::Acked {
            event_id,
            targeted: vec![a.clone(), b.clone(), "ann".into()],
            acked: vec![b, a]
        }
    );
    assert_eq!(
        hub.router
            .next_deadline()
            .map(|d| d > hub.start + Duration::from_secs(9)),
        Some(true),
        "only the PING round is left"
    );
}

#[test]
fn acked_emits_time_out_or_settle_when_a_target_leaves() {
    let mut hub = Hub::new();
    let a = hub.listen(1, "room", "{}");
    let b = hub.listen(2, "room", "{}");
    let (out, answer) = hub.emit("room", Targets::All, true, 2);
    let Event::Message(message) = &out[0].event else {
        panic!()
    };
    let event_id = message.event_id.clone();
    hub.at(
        Command::Ack {
            conn: ConnId(1),
            event_id: event_id.clone(),
        },
        3,
    );
    assert!(hub
        .router
        .expire(hub.start + Duration::from_secs(6))
        .is_empty());
    assert!(answer.try_recv().is_err());
    hub.router.expire(hub.start + Duration::from_secs(7));
    assert_eq!(
        answer.try_recv().unwrap(),
        EmitOutcome::Unacked {
            event_id,
            targeted: vec![a.clone(), b.clone()],
            acked: vec![a.clone()],
            missing: vec![b.clone()]
        }
    );

    let (out, answer) = hub.emit("room", Targets::All, true, 8);
    let Event::Message(message) = &out[0].event else {
        panic!()
    };
    let event_id = message.event_id.clone();
    hub.close(2);
    assert!(answer.try_recv().is_err(), "still waiting for {a}");
    hub.at(
        Command::Ack {
            conn: ConnId(1),
            event_id: event_id.clone(),
        },
        8,
    );
    assert_eq!(
        answer.try_recv().unwrap(),
        EmitOutcome::Unacked {
            event_id,
            targeted: vec![a.clone(), b.clone()],
            acked: vec![a],
            missing: vec![b]
        }
    );
}

#[test]
fn ping_rounds_measure_latency_and_evict_the_silent() {
    let mut hub = Hub::new();
    let a = hub.listen(1, "room", "{}");
    let b = hub.listen(2, "room", "{}");
    let interval = SETTINGS.ping_interval;
    // The listeners joined at 1 s, which started the rounds.
    let at = |hub: &Hub, n: u32| hub.start + Duration::from_secs(1) + interval * n;
    let round = |hub: &mut Hub, n: u32| hub.router.expire(at(hub, n));
    let out = round(&mut hub, 1);
    let pinged: Vec<ConnId> = out
        .iter()
        .filter(|d| matches!(d.event, Event::Ping))
        .flat_map(|d| d.to.clone())
        .collect();
    assert_eq!(sorted(pinged), to(&[1, 2]));
    // `a` answers 250 ms after its ping; `b` never does.
    hub.router.handle(
        Command::Pong { conn: ConnId(1) },
        at(&hub, 1) + Duration::from_millis(250),
    );
    assert_eq!(hub.router.addressee(ConnId(1)).unwrap().latency_ms, 250);
    let out = round(&mut hub, 2);
    assert!(
        out.iter().all(|d| !matches!(d.event, Event::Disconnect(_))),
        "{out:?}"
    );
    hub.router
        .handle(Command::Pong { conn: ConnId(1) }, at(&hub, 2));
    // Two intervals after its first PING, `b` is dropped.
    let out = round(&mut hub, 3);
    let evicted: Vec<&Delivery> = out
        .iter()
        .filter(|d| matches!(d.event, Event::Disconnect(Disconnect::PingTimeout)))
        .collect();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].to, to(&[2]));
    assert_eq!(
        presence_events(&out),
        vec![(to(&[1]), PresenceChange::Left, b.clone())]
    );
    // The evicted client keeps its id for its last words, and is no member.
    assert_eq!(hub.router.addressee(ConnId(2)).unwrap().client_id, b);
    let _ = a;
}

// --- blazing documents -------------------------------------------------------

impl Hub {
    fn edit_doc(&mut self, conn: u64, edit: Edit, secs: u64) -> Vec<Delivery> {
        self.at(
            Command::Edit {
                conn: ConnId(conn),
                edit,
            },
            secs,
        )
    }

    /// Opens `conn` as a blazing client of `computer` (user `user`), with
    /// `stored` as the text its connection read from disk.
    fn join_doc(
        &mut self,
        conn: u64,
        user: &str,
        computer: &str,
        stored: Option<&str>,
        secs: u64,
    ) -> Vec<Delivery> {
        let open = Command::Open {
            conn: ConnId(conn),
            dialect: Dialect::Blazing,
        };
        self.at(open, secs);
        let who = Joiner::Blazing {
            computer: computer.into(),
            user: user.into(),
            display: None,
            token_left: Duration::from_secs(3600),
            grant: Grant::service(),
            stored: stored.map(String::from),
        };
        self.at(
            Command::Join {
                conn: ConnId(conn),
                who: Box::new(who),
            },
            secs,
        )
    }
}

fn write_edit(offset: i64, text: &str) -> Edit {
    Edit::Write {
        offset,
        selection: 0,
        text: text.into(),
        rev: None,
    }
}

fn synced_text(out: &[Delivery]) -> String {
    out.iter()
        .find_map(|d| match &d.event {
            Event::Document(DocumentEvent::Sync { document, .. }) => {
                Some(document.text.to_string())
            }
            _ => None,
        })
        .expect("a sync")
}

/// The next snapshot the router handed to its (captured) saver.
fn next_save(
    saves: &crossbeam_channel::Receiver<crate::store::Job>,
) -> Option<crate::store::Snapshot> {
    match saves.try_recv().ok()? {
        crate::store::Job::Save(snapshot) => Some(snapshot),
        crate::store::Job::Flush(_) => None,
    }
}

#[test]
fn one_snapshot_at_a_time_goes_to_the_saver_and_failures_are_retried() {
    let (store, saves) = crate::store::Store::capture();
    let mut hub = Hub {
        router: Router::new(SETTINGS).with_store(store),
        start: Instant::now(),
    };
    hub.join_doc(1, "u", "pc", None, 0);
    hub.edit_doc(1, write_edit(0, "a"), 0);
    hub.router.expire(hub.start + Duration::from_secs(1));
    let first = next_save(&saves).expect("a snapshot a second after the edit");
    assert_eq!((&*first.text, first.version), ("a", 1));
    // More edits while the first is being written: nothing new is queued.
    hub.edit_doc(1, write_edit(1, "b"), 1);
    hub.router.expire(hub.start + Duration::from_secs(3));
    assert!(next_save(&saves).is_none());
    // The first fails: it is tried again later, with the newer text.
    hub.at(
        Command::Control(Control::Saved {
            computer: "pc".into(),
            version: 1,
            written: false,
        }),
        3,
    );
    assert!(next_save(&saves).is_none());
    hub.router.expire(hub.start + Duration::from_secs(8));
    let retry = next_save(&saves).expect("a retry");
    assert_eq!((&*retry.text, retry.version), ("ab", 2));
}

#[test]
fn a_saved_document_lingers_so_a_late_join_with_a_stale_file_gets_the_newer_text() {
    let (store, saves) = crate::store::Store::capture();
    let mut hub = Hub {
        router: Router::new(SETTINGS).with_store(store),
        start: Instant::now(),
    };
    hub.join_doc(1, "a", "pc", None, 0);
    hub.edit_doc(1, write_edit(0, "precious"), 0);
    hub.close(1);
    let snapshot = next_save(&saves).expect("saved when the last user left");
    hub.at(
        Command::Control(Control::Saved {
            computer: "pc".into(),
            version: snapshot.version,
            written: true,
        }),
        3,
    );
    // A join whose connection read the file before that save arrives now.
    let out = hub.join_doc(2, "b", "pc", Some(""), 4);
    assert_eq!(synced_text(&out), "precious");
    hub.close(2);
    // A minute after the last save with nobody in it, the document goes,
    // and the next join uses what its connection read.
    hub.router.expire(hub.start + Duration::from_secs(4 + 61));
    let out = hub.join_doc(3, "c", "pc", Some("from disk"), 70);
    assert_eq!(synced_text(&out), "from disk");
}

#[test]
fn a_user_on_two_connections_joins_and_leaves_once() {
    let mut hub = Hub::new();
    hub.join_doc(1, "watcher", "pc", None, 0);
    let joined = |out: &[Delivery]| {
        out.iter()
            .filter(|d| matches!(d.event, Event::Document(DocumentEvent::UserUpdate { .. })))
            .count()
    };
    assert_eq!(joined(&hub.join_doc(2, "u", "pc", None, 0)), 1);
    assert_eq!(joined(&hub.join_doc(3, "u", "pc", None, 0)), 0);
    assert_eq!(joined(&hub.close(2)), 0);
    assert_eq!(joined(&hub.close(3)), 1);
}

#[test]
fn syncs_of_one_version_share_their_snapshot() {
    let mut hub = Hub::new();
    hub.join_doc(1, "u", "pc", Some("text"), 0);
    let snapshot_of = |out: Vec<Delivery>| match &out[0].event {
        Event::Document(DocumentEvent::Sync { document, .. }) => document.clone(),
        other => panic!("{other:?}"),
    };
    let first = snapshot_of(hub.edit_doc(1, Edit::Sync, 1));
    let again = snapshot_of(hub.edit_doc(1, Edit::Sync, 1));
    assert!(Arc::ptr_eq(&first, &again), "the same version is shared");
    hub.edit_doc(1, write_edit(0, "more "), 1);
    let after = snapshot_of(hub.edit_doc(1, Edit::Sync, 1));
    assert_eq!(&*after.text, "more text");
    assert!(!Arc::ptr_eq(&first, &after));
}

#[test]
fn a_flush_is_answered_at_once_and_delivers_nothing() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    let (done, answered) = crossbeam_channel::bounded(1);
    assert!(hub
        .at(Command::Control(Control::Flush { done }), 1)
        .is_empty());
    assert_eq!(answered.try_recv(), Ok(()));
    // An answer nobody waits for any more is no harm.
    let (done, answered) = crossbeam_channel::bounded(1);
    drop(answered);
    assert!(hub
        .at(Command::Control(Control::Flush { done }), 2)
        .is_empty());
}

#[test]
fn a_rate_limited_refusal_reaches_its_member_with_its_seq() {
    let mut hub = Hub::new();
    hub.join(1, "ann");
    let refused = Command::Request {
        conn: ConnId(1),
        seq: 4,
        request: Request::Invalid(RequestError::RateLimited),
    };
    let out = hub.at(refused, 1);
    assert!(
        matches!(&out[..], [Delivery { to, event: Event::Refused { seq: Some(4), error: RequestError::RateLimited } }] if to == &[ConnId(1)]),
        "{out:?}"
    );
}

/// `$sys` snapshots run while it has listeners and stop with the last one,
/// so an idle hub has no timer of theirs.
#[test]
fn sys_snapshots_tick_only_while_listened() {
    let mut hub = Hub::new();
    let none_yet = hub.router.next_deadline();
    assert!(none_yet.is_none(), "{none_yet:?}");
    hub.listen(1, "$sys", "{}");
    let start = hub.start;
    let secs = |s: u64| start + Duration::from_secs(s);
    let first = hub.router.expire(secs(1));
    let is_snapshot = |out: &[Delivery]| {
        matches!(out, [Delivery { to, event: Event::Message(m) }]
            if to == &[ConnId(1)] && m.data.get().contains("\"connections\""))
    };
    assert!(is_snapshot(&first), "{first:?}");
    assert_eq!(hub.router.next_deadline(), Some(secs(2)));
    assert!(is_snapshot(&hub.router.expire(secs(2))));
    hub.at(Command::Closed { conn: ConnId(1) }, 2);
    assert!(hub.router.expire(secs(3)).is_empty());
    // Only the channels PING round (1 s + 10 s) is left, and then nothing.
    assert_eq!(hub.router.next_deadline(), Some(secs(11)));
    hub.router.expire(secs(11));
    assert_eq!(hub.router.next_deadline(), None);
}
