//! What the five original systems' own clients send, replayed over real
//! sockets, and what those clients read from the answers: switchboard is
//! a drop-in for people who already run one of them (README, "Coming from
//! the original"). One module per original; each test names the client
//! file whose behaviour it reproduces.

#[path = "../support/mod.rs"]
mod support;

mod blazing;
mod channels;
mod common;
mod concierge;
mod world;
