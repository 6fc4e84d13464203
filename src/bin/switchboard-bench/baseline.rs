//! `baseline`: the least a fan-out server can do, in this process.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use switchboard::wire::frame::Frame;

use crate::client::{Target, SETUP_TIMEOUT};
use crate::concierge::group_message;
use crate::fanout::{publish_paced, Published};
use crate::options::Options;
use crate::receive::gather;
use crate::report::{FanOutcome, UsageStart};
use crate::subscribers::Subscribers;
use crate::Res;

/// The baseline's writer threads do even less.
pub const WRITER_STACK: usize = 64 * 1024;

/// Frames the baseline queues per socket before its publisher waits.
pub const BASELINE_QUEUE: usize = 1024;

/// The fan-out ceiling: a server in this process that accepts S clients and
/// writes each message, encoded once as a frame, to every socket. One writer
/// thread per socket, fed through a bounded channel of shared frames: the
/// shape of switchboard's own writers, minus everything else (parsing,
/// routing, rendering). Where switchboard drops a client that falls too far
/// behind, the baseline makes its publisher wait.
pub fn baseline(options: &Options, frame_bytes: Option<usize>) -> Res<FanOutcome> {
    let clock = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let count = options.subscribers;
    let acceptor = thread::Builder::new()
        .name("baseline-accept".into())
        .spawn(move || accept_clients(&listener, count))?;
    let target = Target {
        url: format!("ws://{addr}/"),
        addr,
        subprotocol: false,
    };
    let mut subscribers = Subscribers::new(options.receivers, count);
    for i in 0..count {
        subscribers
            .add(&target, None)
            .map_err(|e| format!("baseline client {i}: {e}"))?;
    }
    let writers = acceptor
        .join()
        .map_err(|_| "baseline acceptor panicked")??;

    let usage = UsageStart::now(None)?;
    let deadline = usage.begin + options.timeout;
    let receivers = subscribers.start(options.messages, deadline, clock)?;
    let published = publish_frames(&writers, options, frame_bytes, clock, deadline);
    drop(writers); // writers end once their queues are empty
    let deliveries = gather(receivers);
    Ok(FanOutcome {
        title: format!(
            "baseline (in-process fan-out, {})",
            match frame_bytes {
                Some(bytes) => format!("frames padded to {bytes} bytes"),
                None => "bare MESSAGE frames".into(),
            }
        ),
        subscribers: count,
        messages: options.messages,
        rate: options.rate,
        payload: options.payload,
        published,
        acks: None,
        usage: usage.finish(deliveries.last_at, None)?,
        deliveries,
    })
}

/// Accepts `count` WebSocket clients (tungstenite does the handshake) and
/// starts a writer thread for each. Gives up after [`SETUP_TIMEOUT`]
/// without a new client.
pub fn accept_clients(listener: &TcpListener, count: usize) -> Res<Vec<Sender<Arc<[u8]>>>> {
    // Non-blocking accepts, so that a client that never comes cannot keep
    // this thread waiting forever.
    listener.set_nonblocking(true)?;
    let mut writers = Vec::with_capacity(count);
    let mut waiting_since = Instant::now();
    while writers.len() < count {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if waiting_since.elapsed() > SETUP_TIMEOUT {
                    return Err("baseline: clients stopped arriving".into());
                }
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        waiting_since = Instant::now();
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
        let stream = tungstenite::accept(stream)
            .map_err(|e| format!("baseline handshake: {e}"))?
            .into_inner();
        stream.set_nodelay(true)?;
        // A writer stuck on a client that stopped reading gives up.
        stream.set_write_timeout(Some(SETUP_TIMEOUT))?;
        let (frames_tx, frames) = bounded(BASELINE_QUEUE);
        thread::Builder::new()
            .name("baseline-writer".into())
            .stack_size(WRITER_STACK)
            .spawn(move || write_frames(stream, &frames))?;
        writers.push(frames_tx);
    }
    Ok(writers)
}

/// A baseline writer: the same bytes as every other writer, straight to
/// the socket.
pub fn write_frames(mut stream: TcpStream, frames: &Receiver<Arc<[u8]>>) {
    for frame in frames {
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}

/// The baseline's publisher: a fresh frame per message (the send time is
/// inside), encoded once and handed to every writer.
pub fn publish_frames(
    writers: &[Sender<Arc<[u8]>>],
    options: &Options,
    frame_bytes: Option<usize>,
    clock: Instant,
    deadline: Instant,
) -> Published {
    publish_paced(options, clock, |_, data| {
        let frame: Arc<[u8]> = Frame::text(&baseline_text(data, frame_bytes))
            .to_vec()
            .into();
        for writer in writers {
            // A writer whose client is gone has dropped its queue: skip it.
            if let Err(crossbeam_channel::SendTimeoutError::Timeout(_)) =
                writer.send_deadline(frame.clone(), deadline)
            {
                return Err("deadline passed while publishing".into());
            }
        }
        Ok(())
    })
}

/// A MESSAGE like switchboard's, padded to `frame_bytes` with an `origin`
/// placed where switchboard's long one is, before `data`.
pub fn baseline_text(data: &str, frame_bytes: Option<usize>) -> String {
    let with_origin = |pad: &str| {
        let head = format!(r#"{{"type":"MESSAGE","origin":{{"pad":"{pad}"}},"#);
        format!(r#"{head}"target":{{"type":"GROUP","group":"baseline"}},"data":{data}}}"#)
    };
    let Some(size) = frame_bytes else {
        return group_message("baseline", data);
    };
    // Sizes are of the text, without the frame header, as fanout measures
    // its deliveries.
    let shortest = with_origin("").len();
    with_origin(&"o".repeat(size.saturating_sub(shortest)))
}
