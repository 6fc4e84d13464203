//! The document follower thread: for each document this node holds, reads
//! the cluster's text of it once (a snapshot and the stream entries after
//! it), then every new entry of its stream, and hands them to the router
//! in the stream's order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::Value;

use super::keys::{self, eval, Keys};
use super::{Connection, Role};
use crate::log;
use crate::metrics::Metrics;
use crate::router::cluster::{Appended, Entries, Inbound, StreamId};
use crate::router::Command;

/// How long one stream read waits for new entries before new orders are
/// looked at: the delay before a newly opened document is followed.
const READ_BLOCK: Duration = Duration::from_millis(200);
/// Entries read at once, per stream.
const READ_COUNT: usize = 1000;
/// The longest the thread sleeps before looking at its orders again.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// An order from the writer thread (on behalf of the router).
#[derive(Debug)]
pub enum Follow {
    /// Start following a document; `text` is this node's copy.
    Start {
        /// The document.
        computer: String,
        /// This node's text, the base if the cluster has none.
        text: String,
    },
    /// Stop following a document.
    Stop {
        /// The document.
        computer: String,
    },
}

/// The follower thread's state.
pub struct Follower {
    redis: Connection,
    keys: Keys,
    /// The writer's orders. Closed when the writer ends, which ends this
    /// thread.
    orders: Receiver<Follow>,
    /// The router's queue, for the entries.
    commands: Sender<Command>,
    /// Followed documents and the last entry handed to the router.
    followed: BTreeMap<String, StreamId>,
    /// Documents to follow whose base is still to be read, with this
    /// node's text.
    starting: BTreeMap<String, String>,
}

/// Why the thread stops.
struct Gone;

/// A document's base as Redis has it.
struct Base {
    /// The snapshot's text.
    text: String,
    /// The last entry it includes.
    id: StreamId,
    /// The entry count it includes.
    count: u64,
    /// The entries after it.
    entries: Entries,
    /// The last entry's id, understood or not.
    last: Option<StreamId>,
}

impl Follower {
    /// A follower for `keys.node`.
    pub fn new(
        client: redis::Client,
        keys: Keys,
        orders: Receiver<Follow>,
        commands: Sender<Command>,
        metrics: Arc<Metrics>,
    ) -> Follower {
        Follower {
            redis: Connection::new(client, Role::Documents, metrics),
            keys,
            orders,
            commands,
            followed: BTreeMap::new(),
            starting: BTreeMap::new(),
        }
    }

    /// Runs until the writer (and with it the router) is gone.
    pub fn run(mut self) {
        while self.turn().is_ok() {}
    }

    fn turn(&mut self) -> Result<(), Gone> {
        self.take_orders()?;
        self.start_following()?;
        if self.followed.is_empty() {
            return Ok(());
        }
        match self.read() {
            Some(batches) => {
                for (computer, entries) in batches {
                    self.hand_over(Inbound::DocumentEntries { computer, entries })?;
                }
            }
            // Redis is away: wait for it, still taking orders.
            None => self.wait_orders(self.redis.wait().max(READ_BLOCK))?,
        }
        Ok(())
    }

    /// Applies the waiting orders; with nothing followed, waits for one.
    fn take_orders(&mut self) -> Result<(), Gone> {
        if self.followed.is_empty() && self.starting.is_empty() {
            let order = self.orders.recv().map_err(|_| Gone)?;
            self.obey(order);
        }
        while let Ok(order) = self.orders.try_recv() {
            self.obey(order);
        }
        Ok(())
    }

    fn wait_orders(&mut self, timeout: Duration) -> Result<(), Gone> {
        match self.orders.recv_timeout(timeout) {
            Ok(order) => self.obey(order),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(Gone),
        }
        Ok(())
    }

    fn obey(&mut self, order: Follow) {
        match order {
            // For a document followed already, the router asks for its
            // base again (it saw entries missing).
            Follow::Start { computer, text } => {
                self.followed.remove(&computer);
                self.starting.insert(computer, text);
            }
            Follow::Stop { computer } => {
                self.followed.remove(&computer);
                self.starting.remove(&computer);
            }
        }
    }

    /// Reads the base of each document waiting for one.
    fn start_following(&mut self) -> Result<(), Gone> {
        let waiting: Vec<String> = self.starting.keys().cloned().collect();
        let mut failed = false;
        for computer in waiting {
            let text = self.starting.get(&computer).cloned().unwrap_or_default();
            let Some(Base {
                text: base,
                id,
                count,
                entries,
                last,
            }) = self.base(&computer, &text)
            else {
                // Redis is away, or refused this one (a key of the wrong
                // type): tried again next turn; the others go on.
                failed = true;
                continue;
            };
            self.starting.remove(&computer);
            self.followed.insert(computer.clone(), last.unwrap_or(id));
            self.hand_over(Inbound::DocumentBase {
                computer,
                text: base,
                id,
                count,
                entries,
            })?;
        }
        if failed {
            std::thread::sleep(self.redis.wait().clamp(READ_BLOCK, MAX_WAIT));
        }
        Ok(())
    }

    /// The cluster's text of a document: its snapshot (made from `text`
    /// if it has none) and the entries after it.
    fn base(&mut self, computer: &str, text: &str) -> Option<Base> {
        let snapshot = self.keys.snapshot(computer);
        let keys = [&snapshot, &self.keys.meta(computer)];
        self.redis
            .run::<i64>(&eval(keys::SNAPSHOT, &keys, &["0", "0", "0", text]))?;
        let (ms, seq, count, text): (u64, u64, u64, String) = self.redis.run(
            redis::cmd("HMGET")
                .arg(&snapshot)
                .arg("ms")
                .arg("seq")
                .arg("n")
                .arg("text"),
        )?;
        let id = StreamId { ms, seq };
        let range = redis::cmd("XRANGE")
            .arg(self.keys.stream(computer))
            .arg(format!("({id}"))
            .arg("+")
            .clone();
        let entries = self.redis.run::<Value>(&range)?;
        Some(Base {
            text,
            id,
            count,
            last: last_id(&entries),
            entries: parse_entries(&entries),
        })
    }

    /// New entries of every followed stream, waiting up to [`READ_BLOCK`]
    /// for some; `None` if Redis is away.
    fn read(&mut self) -> Option<Vec<(String, Entries)>> {
        let by_key: HashMap<String, String> = self
            .followed
            .keys()
            .map(|c| (self.keys.stream(c), c.clone()))
            .collect();
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(u64::try_from(READ_BLOCK.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS");
        for computer in self.followed.keys() {
            read.arg(self.keys.stream(computer));
        }
        for last in self.followed.values() {
            read.arg(last.to_string());
        }
        let answer = self.redis.run::<Value>(&read)?;
        let mut batches = Vec::new();
        for (key, entries) in streams(&answer) {
            let Some(computer) = by_key.get(&key) else {
                continue;
            };
            // The position moves past every entry read, those that could
            // not be understood included: else XREAD returns them again at
            // once, forever.
            if let (Some(last), Some(position)) =
                (last_id(entries), self.followed.get_mut(computer))
            {
                *position = last;
            }
            batches.push((computer.clone(), parse_entries(entries)));
        }
        Some(batches)
    }

    fn hand_over(&self, news: Inbound) -> Result<(), Gone> {
        self.commands
            .send(Command::Cluster(Box::new(news)))
            .map_err(|_| Gone)
    }
}

/// XREAD's answer: `[[key, entries], …]`, or nil when nothing came.
fn streams(answer: &Value) -> Vec<(String, &Value)> {
    let Value::Array(streams) = answer else {
        return Vec::new();
    };
    streams
        .iter()
        .filter_map(|stream| match stream {
            Value::Array(pair) if pair.len() == 2 => Some((text(&pair[0])?, &pair[1])),
            _ => None,
        })
        .collect()
}

/// Stream entries, `[[id, [field, value, …]], …]`, whose field `e` holds
/// a `DocumentEntry` and `n` its number. Entries that are not are
/// skipped, with a warning.
fn parse_entries(entries: &Value) -> Entries {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(pair) = entry else {
                return None;
            };
            let id = StreamId::parse(&text(pair.first()?)?)?;
            let Value::Array(fields) = pair.get(1)? else {
                return None;
            };
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|f| text(&f[0]).as_deref() == Some(name))
                    .and_then(|f| text(f.get(1)?))
            };
            let number = field("n").and_then(|n| n.parse().ok()).unwrap_or(0);
            match serde_json::from_str(&field("e")?) {
                Ok(entry) => Some(Appended { id, number, entry }),
                Err(e) => {
                    log::warn!("cluster: stream entry {id} is not understood: {e}");
                    None
                }
            }
        })
        .collect()
}

/// The id of the last of `[[id, fields], …]`, understood or not.
fn last_id(entries: &Value) -> Option<StreamId> {
    let Value::Array(entries) = entries else {
        return None;
    };
    let Value::Array(pair) = entries.last()? else {
        return None;
    };
    StreamId::parse(&text(pair.first()?)?)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
