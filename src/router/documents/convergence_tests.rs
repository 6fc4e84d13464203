//! The whole scheme, simulated: one server text and 2 to 5 clients that
//! type at once and hear of each other's writes after random delays. The
//! clients are the classic central-server OT client (the one
//! `src/web/editor.js` implements): one write in flight, what is typed
//! meanwhile buffered, remote writes transformed against both.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::text::{Base, Text};
use super::transform::{apply, transform, Op};

/// A write as the server broadcasts it.
#[derive(Debug, Clone)]
struct Broadcast {
    writer: usize,
    op: Op,
    rev: u64,
}

#[derive(Debug)]
struct Client {
    text: String,
    /// The server's revision this client has seen.
    rev: u64,
    /// Its write the server has not acknowledged yet.
    inflight: Option<Op>,
    /// What was typed since, in order: each on the text after the one
    /// before. Typing at one place merges into one write.
    buffer: VecDeque<Op>,
    outbox: VecDeque<(Op, u64)>,
    inbox: VecDeque<Broadcast>,
}

impl Client {
    fn new(text: &str) -> Client {
        Client {
            text: text.to_string(),
            rev: 0,
            inflight: None,
            buffer: VecDeque::new(),
            outbox: VecDeque::new(),
            inbox: VecDeque::new(),
        }
    }

    fn edit(&mut self, op: Op) {
        self.text = apply(&self.text, &op);
        match self.buffer.back_mut().and_then(|last| merge(last, &op)) {
            Some(merged) => *self.buffer.back_mut().expect("merged into it") = merged,
            None => self.buffer.push_back(op),
        }
        if self.inflight.is_none() {
            self.send();
        }
    }

    /// Sends the first write typed since the last one, if any.
    fn send(&mut self) {
        if let Some(op) = self.buffer.pop_front() {
            self.outbox.push_back((op.clone(), self.rev));
            self.inflight = Some(op);
        }
    }

    fn receive(&mut self, me: usize, write: Broadcast) {
        self.rev = write.rev;
        if write.writer == me {
            self.inflight = None;
            self.send();
            return;
        }
        let mut theirs = write.op;
        let mine = self.inflight.iter_mut().chain(self.buffer.iter_mut());
        for op in mine {
            let (transformed, passed) = transform(op, &theirs);
            *op = transformed;
            theirs = passed;
        }
        self.text = apply(&self.text, &theirs);
    }
}

/// `second` (made on the text after `first`) merged into `first`, when it
/// lies within (or at the edges of) the text `first` wrote.
fn merge(first: &Op, second: &Op) -> Option<Op> {
    let written_end = first.start + first.written();
    if second.start < first.start || second.end > written_end {
        return None;
    }
    let inner = Op::new(
        second.start - first.start,
        second.end - first.start,
        second.text.clone(),
    );
    Some(Op::new(first.start, first.end, apply(&first.text, &inner)))
}

#[derive(Debug, Clone)]
enum Action {
    /// Client `c` inserts its next fragment at a fraction of its text.
    Insert(usize, u8),
    /// Client `c` deletes a span of base letters at a fraction of its text.
    Delete(usize, u8, u8),
    /// The server takes client `c`'s next write.
    Serve(usize),
    /// Client `c` hears the next broadcast.
    Hear(usize),
}

fn action(clients: usize, deletes: u32) -> impl Strategy<Value = Action> {
    let c = 0..clients;
    prop_oneof![
        3 => (c.clone(), any::<u8>()).prop_map(|(c, at)| Action::Insert(c, at)),
        deletes => (c.clone(), any::<u8>(), 1..4u8).prop_map(|(c, at, n)| Action::Delete(c, at, n)),
        3 => c.clone().prop_map(Action::Serve),
        3 => c.prop_map(Action::Hear),
    ]
}

/// A base text, 2 to 5 clients, and what happens; `deletes` weighs how
/// often a client deletes (0: never).
fn scenario(deletes: u32) -> impl Strategy<Value = (String, usize, Vec<Action>)> {
    (2..=5usize).prop_flat_map(move |clients| {
        (
            "[abcde]{0,20}",
            Just(clients),
            prop::collection::vec(action(clients, deletes), 1..80),
        )
    })
}

/// Client `c`'s `k`th fragment: unique, and with non-ASCII letters.
fn fragment(c: usize, k: usize) -> String {
    format!("[{}{k}é𝐀🦀]", (b'P' + c as u8) as char)
}

fn serve(server: &mut Text, clients: &mut [Client], c: usize) {
    let Some((op, rev)) = clients[c].outbox.pop_front() else {
        return;
    };
    let selection = (op.end - op.start) as i64;
    let placed = server
        .place(Base::Rev(rev), op.start as i64, selection, &op.text)
        .expect("within the history kept");
    let applied = server.commit(placed, None);
    let op = Op::new(
        applied.offset,
        applied.offset + applied.selection as usize,
        applied.text,
    );
    for client in clients.iter_mut() {
        client.inbox.push_back(Broadcast {
            writer: c,
            op: op.clone(),
            rev: server.rev(),
        });
    }
}

fn hear(clients: &mut [Client], c: usize) {
    if let Some(write) = clients[c].inbox.pop_front() {
        clients[c].receive(c, write);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn with_deletions_every_copy_converges_and_no_fragment_doubles(
        (base, n, actions) in scenario(1)
    ) {
        simulate(&base, n, &actions)?;
    }

    #[test]
    fn typing_alone_converges_with_every_fragment_exactly_once(
        (base, n, actions) in scenario(0)
    ) {
        simulate(&base, n, &actions)?;
    }
}

/// Runs `actions` with `n` clients on `base`, delivers everything still
/// travelling, and checks the copies and the fragments.
fn simulate(base: &str, n: usize, actions: &[Action]) -> Result<(), TestCaseError> {
    let mut server = Text::new(base.to_string());
    let mut clients: Vec<Client> = (0..n).map(|_| Client::new(base)).collect();
    let mut typed: Vec<String> = Vec::new();
    for action in actions {
        match *action {
            Action::Insert(c, at) => {
                let chars = clients[c].text.chars().count();
                let position = usize::from(at) * (chars + 1) / 256;
                // Never inside another fragment: only after a base
                // letter, a fragment's end, or at the start.
                let position = safe_point(&clients[c].text, position);
                let text = fragment(c, typed.len());
                typed.push(text.clone());
                clients[c].edit(Op::new(position, position, text));
            }
            Action::Delete(c, at, len) => {
                let chars: Vec<char> = clients[c].text.chars().collect();
                let start = usize::from(at) * (chars.len() + 1) / 256;
                let end = (start + usize::from(len)).min(chars.len());
                // Only base letters: a fragment is lost only when it
                // was typed inside a range deleted at the same time.
                if chars[start..end].iter().all(|ch| "abcde".contains(*ch)) && start < end {
                    clients[c].edit(Op::new(start, end, ""));
                }
            }
            Action::Serve(c) => serve(&mut server, &mut clients, c),
            Action::Hear(c) => hear(&mut clients, c),
        }
    }
    // Everything still travelling arrives.
    loop {
        let busy = clients
            .iter()
            .any(|c| !c.outbox.is_empty() || !c.inbox.is_empty());
        if !busy {
            break;
        }
        for c in 0..n {
            serve(&mut server, &mut clients, c);
            hear(&mut clients, c);
        }
    }
    for (c, client) in clients.iter().enumerate() {
        prop_assert_eq!(&client.text, server.as_str(), "client {}", c);
    }
    // A fragment typed strictly inside a range someone deleted at the
    // same time goes with it; without deletions every one is there.
    let deleted = actions.iter().any(|a| matches!(a, Action::Delete(..)));
    for text in &typed {
        let found = server.as_str().matches(text.as_str()).count();
        match deleted {
            true => prop_assert!(
                found <= 1,
                "{} {} times in {}",
                text,
                found,
                server.as_str()
            ),
            false => prop_assert_eq!(found, 1, "{} in {}", text, server.as_str()),
        }
    }
    Ok(())
}

/// The nearest position at or before `at` that is not inside a fragment.
fn safe_point(text: &str, at: usize) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let mut inside = vec![false; chars.len() + 1];
    let mut open = false;
    for (i, ch) in chars.iter().enumerate() {
        if *ch == '[' {
            open = true;
        }
        inside[i] = open && *ch != '[';
        if *ch == ']' {
            open = false;
        }
    }
    (0..=at.min(chars.len()))
        .rev()
        .find(|&p| !inside[p])
        .unwrap_or(0)
}
