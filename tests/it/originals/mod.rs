//! What the original systems' own clients send, replayed over real
//! sockets, and what those clients read from the answers: switchboard is
//! a drop-in for people who already run one of them (docs/<dialect>.md, "Coming from
//! the original"). One module per original; each test names the client
//! file whose behaviour it reproduces.

mod blazing;
mod channels;
mod common;
mod concierge;
mod world;
