//! The Redis keys a cluster shares, and the scripts that change them
//! atomically. Every key starts with `switchboard:`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `switchboard:bus` | pub/sub channel | the nodes' records, JSON |
//! | `switchboard:nodes` | set | node ids that have been seen |
//! | `switchboard:node:<id>` | string, expires | a live node's heartbeat |
//! | `switchboard:name:<name>` | string | the node holding a concierge name |
//! | `switchboard:group:<group>` | string | the node whose member owns a concierge group |
//! | `switchboard:doc:<computer>` | stream | a document's edits, in order |
//! | `switchboard:snap:<computer>` | hash | a document's text after an entry |
//! | `switchboard:meta:<computer>` | hash | a document's entry count; each node's last edit number |

/// `EVAL script <number of keys> keys... args...`.
pub fn eval(script: &str, keys: &[&String], args: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len());
    for key in keys {
        command.arg(key.as_str());
    }
    for arg in args {
        command.arg(*arg);
    }
    command
}

use crate::router::cluster::Claimable;

/// The prefix of every key.
const PREFIX: &str = "switchboard:";

/// The key names, for one node.
#[derive(Debug, Clone)]
pub struct Keys {
    /// This node's id.
    pub node: String,
}

// Every key is asked of the node's `Keys`, although the names are global
// today: the one place that names the keys stays the one place that could
// scope them (to a deployment, say) without touching their users.
#[allow(clippy::unused_self)]
impl Keys {
    /// The keys as node `node` uses them.
    pub fn new(node: &str) -> Keys {
        Keys {
            node: node.to_string(),
        }
    }

    /// The bus channel.
    pub fn bus(&self) -> String {
        format!("{PREFIX}bus")
    }

    /// The set of node ids.
    pub fn nodes(&self) -> String {
        format!("{PREFIX}nodes")
    }

    /// A node's heartbeat key.
    pub fn node_key(&self, node: &str) -> String {
        format!("{PREFIX}node:{node}")
    }

    /// The prefix of heartbeat keys, for the claim script.
    pub fn node_prefix(&self) -> String {
        format!("{PREFIX}node:")
    }

    /// A claim's key: a concierge name's, or a group's.
    pub fn claim(&self, claim: &Claimable) -> String {
        match claim {
            Claimable::Name(name) => format!("{PREFIX}name:{name}"),
            Claimable::Group(group) => format!("{PREFIX}group:{group}"),
        }
    }

    /// A document's stream.
    pub fn stream(&self, computer: &str) -> String {
        format!("{PREFIX}doc:{computer}")
    }

    /// A document's snapshot.
    pub fn snapshot(&self, computer: &str) -> String {
        format!("{PREFIX}snap:{computer}")
    }

    /// A document's entry count and its nodes' last edit numbers.
    pub fn meta(&self, computer: &str) -> String {
        format!("{PREFIX}meta:{computer}")
    }
}

/// Claims a name (KEYS[1]) for a node (ARGV[1]) unless a live node (one
/// whose heartbeat key, ARGV[2] .. holder, exists) holds it. Returns 1 if
/// the name is now the node's. A dead node's names are free at once.
pub const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. holder) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Releases a name (KEYS[1]) if node ARGV[1] holds it.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Appends an edit (ARGV[1]) to a document's stream (KEYS[1]) with the
/// next entry number, counted in the hash KEYS[2]; unless node ARGV[2]'s
/// edit number ARGV[3] is not above the last one appended (an append
/// retried after its answer was lost). ARGV[4]: entries the stream keeps.
/// Returns the entry number, or 0 for a repeat.
pub const APPEND: &str = r"
local field = 'seq:' .. ARGV[2]
if tonumber(ARGV[3]) <= tonumber(redis.call('HGET', KEYS[2], field) or '0') then
  return 0
end
redis.call('HSET', KEYS[2], field, ARGV[3])
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[1], 'n', n)
return n
";

/// Stores a document's text (ARGV[4]) after stream entry ARGV[1]-ARGV[2],
/// the document's entry number ARGV[3], in the hash KEYS[1], unless it
/// holds a later one. Returns 1 if stored. The count in KEYS[2] is raised
/// to it: after a Redis that restarted empty, numbering goes on from the
/// best text any node had, so nodes that had less see the gap.
pub const SNAPSHOT: &str = r"
local count = tonumber(redis.call('HGET', KEYS[1], 'n') or '-1')
local n = tonumber(ARGV[3])
if n <= count then
  return 0
end
redis.call('HSET', KEYS[1], 'ms', ARGV[1], 'seq', ARGV[2], 'n', ARGV[3], 'text', ARGV[4])
if tonumber(redis.call('HGET', KEYS[2], 'n') or '0') < n then
  redis.call('HSET', KEYS[2], 'n', ARGV[3])
end
return 1
";

/// Entries a document's stream keeps, about (Redis trims in whole
/// blocks). A node that starts following reads the snapshot, then the
/// entries after it; snapshots are stored a second after edits, so far
/// fewer entries than this are ever needed.
pub const STREAM_LENGTH: usize = 100_000;
