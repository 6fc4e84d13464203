//! `fanout`: one publisher, many subscribers of one group.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::{json, Value};
use tungstenite::protocol::Role;
use tungstenite::{Error as WsError, Message, WebSocket};

use crate::baseline::baseline;
use crate::client::{client_config, close_quietly, connect, ConnectError, Target, SETUP_TIMEOUT};
use crate::concierge::{
    abbreviate, create_group, data_json, describe_close, group_message, identify, is_timeout,
    nanos_since, read_text, send_json,
};
use crate::options::Options;
use crate::proc::{open_file_limit, ProcSample};
use crate::receive::{gather, POLL};
use crate::report::{print_ratio, FanOutcome, UsageStart};
use crate::subscribers::Subscribers;
use crate::{Res, Socket, GRACE};

/// `fanout`, and `baseline` after it with `--compare`.
pub fn fanout_scenario(options: &Options) -> Res<bool> {
    let outcome = fanout(options)?;
    let complete = outcome.print_and_check();
    if !options.compare {
        return Ok(complete);
    }
    // The baseline writes frames as large as the server's deliveries were,
    // so both move the same bytes.
    let frame_bytes = outcome.mean_frame_bytes().or(options.frame_bytes);
    println!();
    let baseline = baseline(options, frame_bytes)?;
    let baseline_complete = baseline.print_and_check();
    println!();
    print_ratio(&outcome, &baseline);
    Ok(complete && baseline_complete)
}

pub fn fanout(options: &Options) -> Res<FanOutcome> {
    let target = options.target()?;
    let clock = Instant::now();
    let tag = std::process::id();
    let group = format!("bench_{tag}");
    let server_idle = ProcSample::server(options.server_pid)?;

    let publish_target = options.publish_target()?;
    let (mut publisher, drain) =
        Publisher::open(&publish_target, &format!("bench_{tag}_pub"), &group)?;
    if options.publish_url.is_some() {
        wait_for_group(&target, tag, &group)?;
    }
    let setup = Instant::now();
    let subscribers = join_subscribers(&target, tag, &group, options)?;
    println!(
        "fanout: {} subscribers identified and subscribed in {:.2} s",
        subscribers.len(),
        setup.elapsed().as_secs_f64()
    );

    let usage = UsageStart::now(options.server_pid)?;
    let deadline = usage.begin + options.timeout;
    let receivers = subscribers.start(options.messages, deadline, clock)?;
    let published = publisher.publish(&group, options, clock, deadline);
    drain.take_over(publisher);
    let deliveries = gather(receivers);
    let acks = drain.finish();
    Ok(FanOutcome {
        title: "fanout".into(),
        subscribers: options.subscribers,
        messages: options.messages,
        rate: options.rate,
        payload: options.payload,
        published,
        acks: Some(acks),
        usage: usage.finish(deliveries.last_at, server_idle)?,
        deliveries,
    })
}

/// Waits until the subscribers' node knows `group`, created on another
/// node of the cluster.
pub fn wait_for_group(target: &Target, tag: u32, group: &str) -> Res<()> {
    let mut probe = connect(target, client_config(64 * 1024)).map_err(|e| format!("probe: {e}"))?;
    identify(&mut probe, &format!("bench_{tag}_probe"))?;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        send_json(&mut probe, &json!({"type": "GROUP_FETCH", "name": group}))?;
        let reply: Value = serde_json::from_str(&read_text(&mut probe, deadline)?)?;
        if reply["type"] == "GROUP_FETCH_RESULT" {
            close_quietly(probe);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the group {group} never reached the subscribers' node").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects the subscribers one after another: each has its SUBSCRIBED
/// before the next starts, so all are in the group before publishing.
pub fn join_subscribers(
    target: &Target,
    tag: u32,
    group: &str,
    options: &Options,
) -> Res<Subscribers> {
    let mut subscribers = Subscribers::new(options.receivers, options.subscribers);
    for i in 0..options.subscribers {
        match subscribers.add(target, Some((&format!("bench_{tag}_sub_{i}"), group))) {
            Ok(()) => {}
            Err(ConnectError::OutOfFiles(e)) => {
                return Err(format!(
                    "subscriber {i}: {e}: this process's open-file limit is {} \
                     (raise it with `ulimit -n` in the shell)",
                    open_file_limit()
                )
                .into())
            }
            Err(e) => return Err(format!("subscriber {i}: {e}").into()),
        }
    }
    Ok(subscribers)
}

/// The publishing client. The server answers each MESSAGE with a
/// MESSAGE_SENT status that must be read, or the publisher itself is
/// dropped as a slow consumer; but a tungstenite `WebSocket` has one owner.
/// So after setup the socket is split: this thread writes through one
/// `WebSocket`, a drain thread reads through another over a clone of the
/// same socket (see [`ReadHalf`]).
pub struct Publisher {
    pub ws: Socket,
    pub progress: Arc<Progress>,
}

/// What the publisher has done, for the drain thread.
#[derive(Default)]
pub struct Progress {
    pub sent: AtomicU64,
    /// MESSAGE_SENT replies read so far.
    pub acked: AtomicU64,
    /// Set once the measurement is over: the drain closes the publisher.
    pub stop: AtomicBool,
}

/// What the publisher sent, and why it stopped early, if it did.
pub struct Published {
    pub sent: u64,
    pub error: Option<String>,
}

/// The replies the drain thread read.
#[derive(Default)]
pub struct Acks {
    pub message_sent: u64,
    /// Other replies (an error status, say), with one example.
    pub other: u64,
    pub example: Option<String>,
    pub ended: Option<String>,
}

/// The drain thread, running, and the way to hand it the publisher's
/// writing half once publishing is over.
pub struct Drain {
    pub handle: JoinHandle<Acks>,
    pub progress: Arc<Progress>,
    pub handover: Sender<Socket>,
}

impl Publisher {
    /// Connects, identifies, creates `group`, and splits the socket. The
    /// split comes right after GROUP_CREATED, when nothing else can be in
    /// tungstenite's read buffer, which the split leaves behind.
    pub fn open(target: &Target, name: &str, group: &str) -> Res<(Publisher, Drain)> {
        let mut ws =
            connect(target, client_config(64 * 1024)).map_err(|e| format!("publisher: {e}"))?;
        identify(&mut ws, name)?;
        create_group(&mut ws, group)?;
        let stream = ws.into_inner();
        let reader = WebSocket::from_raw_socket(ReadHalf(stream.try_clone()?), Role::Client, None);
        let progress = Arc::new(Progress::default());
        let (handover, writer) = bounded(1);
        let handle = {
            let progress = progress.clone();
            thread::Builder::new()
                .name("publisher-drain".into())
                .spawn(move || drain_replies(reader, &writer, &progress))?
        };
        let ws = WebSocket::from_raw_socket(stream, Role::Client, None);
        let drain = Drain {
            handle,
            progress: progress.clone(),
            handover,
        };
        Ok((Publisher { ws, progress }, drain))
    }

    /// Sends the messages, paced by `--rate`, until done or `deadline`.
    pub fn publish(
        &mut self,
        group: &str,
        options: &Options,
        clock: Instant,
        deadline: Instant,
    ) -> Published {
        publish_paced(options, clock, |seq, data| {
            if Instant::now() >= deadline {
                return Err("deadline passed while publishing".into());
            }
            self.ws
                .send(Message::text(group_message(group, data)))
                .map_err(|e| format!("publishing failed: {e}"))?;
            self.progress.sent.store(seq + 1, Ordering::Release);
            Ok(())
        })
    }
}

impl Drain {
    /// Gives the drain thread the publisher's writing half. Publishing is
    /// over, but the publisher must stay, or its group goes with it, and a
    /// publisher silent for the server's keepalive interval gets pinged:
    /// the drain thread, which reads the pings, can now answer them.
    pub fn take_over(&self, publisher: Publisher) {
        let _ = self.handover.send(publisher.ws); // fails only if it ended
    }

    /// Waits (up to [`GRACE`]) for the replies still missing, then stops
    /// the drain thread, which closes the publisher.
    pub fn finish(self) -> Acks {
        let progress = &self.progress;
        let give_up = Instant::now() + GRACE;
        while progress.acked.load(Ordering::Acquire) < progress.sent.load(Ordering::Acquire)
            && !self.handle.is_finished()
            && Instant::now() < give_up
        {
            thread::sleep(Duration::from_millis(10));
        }
        progress.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_default()
    }
}

/// Reads the publisher's replies until told to stop or the server closes,
/// counting MESSAGE_SENT. Once it holds the writing half it answers pings
/// and, at the end, closes the connection.
pub fn drain_replies(
    mut reader: WebSocket<ReadHalf>,
    handover: &Receiver<Socket>,
    progress: &Progress,
) -> Acks {
    let mut acks = Acks::default();
    let mut writer: Option<Socket> = None;
    // A ping that came before the writing half did, to answer when it comes.
    let mut unanswered: Option<tungstenite::Bytes> = None;
    if let Err(e) = reader.get_ref().0.set_read_timeout(Some(POLL)) {
        acks.ended = Some(e.to_string());
    }
    while acks.ended.is_none() && !progress.stop.load(Ordering::Acquire) {
        if writer.is_none() {
            writer = handover.try_recv().ok();
        }
        if let (Some(ws), Some(ping)) = (writer.as_mut(), unanswered.take()) {
            let _ = ws.send(Message::Pong(ping));
        }
        match reader.read() {
            // No need to parse: MESSAGE_SENT is a short, fixed payload.
            Ok(Message::Text(text)) if text.contains("\"MESSAGE_SENT\"") => {
                acks.message_sent += 1;
                progress.acked.store(acks.message_sent, Ordering::Release);
            }
            Ok(Message::Text(text)) => {
                acks.other += 1;
                acks.example.get_or_insert_with(|| abbreviate(&text));
            }
            Ok(Message::Ping(ping)) => unanswered = Some(ping),
            Ok(Message::Close(frame)) => {
                let why = describe_close(frame);
                acks.ended = Some(format!("publisher closed by the server: {why}"));
            }
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(e) => acks.ended = Some(format!("publisher's connection: {e}")),
        }
    }
    // Leaving deletes the group: only now that the receivers are done.
    if let Some(ws) = writer.or_else(|| handover.try_recv().ok()) {
        close_quietly(ws);
    }
    acks
}

/// The reading half of the publisher's socket. tungstenite answers pings
/// and closes by writing to the stream it reads from; those writes are
/// dropped here, so only the publishing thread ever writes to the socket
/// and frames never interleave. (switchboard splits its own connections
/// the same way: see src/net/connection.rs.) A publisher is heard from
/// with every message; once it has sent them all, the drain thread answers
/// the server's keepalive pings through the writing half.
pub struct ReadHalf(TcpStream);

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The publishing loop shared by switchboard's publisher and the
/// baseline's: message `seq` carries its send time (nanoseconds since
/// `clock`) in its data and goes out when `--rate` says it is due. Stops
/// at the first error `send` returns.
pub fn publish_paced(
    options: &Options,
    clock: Instant,
    mut send: impl FnMut(u64, &str) -> Result<(), String>,
) -> Published {
    let begin = Instant::now();
    for seq in 0..options.messages {
        pace(begin, seq, options.rate);
        let data = data_json(nanos_since(clock), seq, options.payload);
        if let Err(error) = send(seq, &data) {
            return Published {
                sent: seq,
                error: Some(error),
            };
        }
    }
    Published {
        sent: options.messages,
        error: None,
    }
}

/// Sleeps until message `seq` is due at `rate` per second. Due times count
/// from `begin` (a deadline loop), so the time spent sending does not slow
/// the rate down, and a late message goes out at once.
pub fn pace(begin: Instant, seq: u64, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    let due = begin + Duration::from_secs_f64(seq as f64 / rate);
    let now = Instant::now();
    if due > now {
        thread::sleep(due - now);
    }
}
