//! The embedder's methods: what callers of both RPC dialects (common's
//! REQUEST and DISPATCH, world's `[action, id, payload]`) may invoke
//! beyond the hub's built-ins, and the worker pool that runs them.
//!
//! A call names a method. The router answers the hub's built-in methods
//! (`hub.publish`, `hub.topics`, ...) itself. Methods an embedder registers
//! with [`Server::method`](crate::Server::method) run on a small pool of
//! worker threads instead: the router hands each call to the pool without
//! waiting (a full queue is answered `busy`), a worker runs the method, and
//! its result comes back to the router as a [`Command::Answer`] like any
//! other command. A slow method therefore delays only its own answer; the
//! router, and every other client, go on.

use std::collections::HashMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::dialect::Dialect;
use crate::id::Uuid;
use crate::log;
use crate::router::{Command, ConnId};

/// Who is calling a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its unique name in the hub (`common_…`, `world_…`, a concierge name).
    pub name: String,
    /// Its uuid in the hub.
    pub uuid: Uuid,
    /// The dialect it speaks.
    pub dialect: Dialect,
    /// The authenticated user behind it (world: the token's `sub` or the
    /// `client_id`), if the dialect has users.
    pub user: Option<String>,
    /// What the user's token says it is (world: the `traits` claim, as
    /// venueless issues them; empty otherwise), for methods that decide by
    /// role.
    pub traits: Vec<String>,
}

/// A method's failure, sent back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// A short, stable code (`unknown_method`, `invalid_args`, ...).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl RpcError {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> RpcError {
        RpcError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl RpcError {
    /// The answer to a call the message rate limit dropped: `rate_limited`.
    pub fn rate_limited() -> RpcError {
        RpcError::new("rate_limited", crate::router::RATE_LIMITED_MESSAGE)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// An embedder's method: gets the caller and the call's arguments (common's
/// `a` array, or world's payload), returns a JSON result or an error.
pub type Method = Arc<dyn Fn(&Caller, &Value) -> Result<Value, RpcError> + Send + Sync>;

/// The methods an embedder registered, by name.
#[derive(Clone, Default)]
pub struct Methods(HashMap<String, Method>);

impl Methods {
    /// Registers `method` under `name`, replacing any earlier one.
    pub fn insert(&mut self, name: &str, method: Method) {
        self.0.insert(name.to_string(), method);
    }

    /// The method called `name`.
    pub fn get(&self, name: &str) -> Option<&Method> {
        self.0.get(name)
    }

    /// Whether no method is registered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A correlation id: common's nonce `n` or world's id, any JSON value,
/// echoed back byte for byte.
pub type CallId = Arc<RawValue>;

/// Where a call's answer goes: the caller wants one, tagged with `id` if
/// the call had one (a world action may come without).
#[derive(Debug, Clone)]
pub struct ReplyTo {
    /// The correlation id to echo.
    pub id: Option<CallId>,
}

/// One call handed to the pool.
pub struct Job {
    method: Method,
    caller: Caller,
    args: Value,
    conn: ConnId,
    /// `None` for a call that wants no answer (common's DISPATCH).
    reply: Option<ReplyTo>,
}

impl Job {
    /// A call of `method` by `caller` on `conn`.
    pub fn new(
        method: Method,
        caller: Caller,
        args: Value,
        conn: ConnId,
        reply: Option<ReplyTo>,
    ) -> Job {
        Job {
            method,
            caller,
            args,
            conn,
            reply,
        }
    }
}

/// The router's handle on the worker pool. Dropping it (with the router)
/// closes the queue, and the workers end.
#[derive(Debug, Clone)]
pub struct Pool {
    methods: Methods,
    /// The bounded queue of calls; workers hold the receiving end.
    jobs: Sender<Job>,
}

/// Calls that may wait for a worker before new ones are answered `busy`.
const QUEUE: usize = 1024;
/// A worker's stack: methods are the embedder's code, so room to work.
const WORKER_STACK: usize = 1 << 20;

impl Pool {
    /// Starts `workers` threads running `methods`; answers go to `router`.
    pub fn start(
        methods: Methods,
        workers: usize,
        router: Sender<Command>,
    ) -> std::io::Result<Pool> {
        let (jobs, queue) = crossbeam_channel::bounded(QUEUE);
        for _ in 0..workers.max(1) {
            let (queue, router) = (queue.clone(), router.clone());
            thread::Builder::new()
                .name("rpc-worker".into())
                .stack_size(WORKER_STACK)
                .spawn(move || work(&queue, &router))?;
        }
        Ok(Pool { methods, jobs })
    }

    /// The registered method called `name`.
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.get(name)
    }

    /// Queues a call without waiting. A full queue is `busy`.
    pub fn submit(&self, job: Job) -> Result<(), RpcError> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                Err(RpcError::new("busy", "too many calls waiting; try again"))
            }
            Err(TrySendError::Disconnected(_)) => Err(RpcError::new("internal", "no workers")),
        }
    }
}

/// A worker: runs calls until the queue closes. A method that panics is
/// answered `internal`; the worker lives on.
fn work(queue: &Receiver<Job>, router: &Sender<Command>) {
    for job in queue {
        let Job {
            method,
            caller,
            args,
            conn,
            reply,
        } = job;
        let result = panic::catch_unwind(AssertUnwindSafe(|| method(&caller, &args)))
            .unwrap_or_else(|_| {
                log::error!("{conn}: an RPC method panicked");
                Err(RpcError::new("internal", "the method failed"))
            });
        // Reported even without a reply wanted: the router counts each
        // connection's calls in flight.
        let answer = Command::Answer {
            conn,
            reply,
            result,
        };
        if router.send(answer).is_err() {
            return; // the router is gone: so is everyone to answer
        }
    }
}
