//! A client's byte stream: the socket itself, or (feature `tls`, with
//! `--tls-cert`) a TLS session over it. Everything above this file reads
//! and writes plaintext through `&Stream` and never asks which it is,
//! except where the difference matters: the writer thread seals a whole
//! batch at once ([`super::writer`]), and the router may write through
//! to a plain socket only ([`super::connection`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// One client's connection. Both threads of a WebSocket share it through
/// an `Arc`: `&Stream` is `Read + Write`, as `&TcpStream` is.
#[derive(Debug)]
pub struct Stream {
    /// The socket. An `Arc` of its own, so that an outbox can write
    /// through to a plain socket (net/outbox.rs).
    tcp: Arc<TcpStream>,
    /// The TLS session over it, if the server speaks TLS (boxed: a
    /// session is over a KiB, and plain streams are moved around).
    #[cfg(feature = "tls")]
    tls: Option<Box<super::tls::Session>>,
}

impl Stream {
    /// A plain TCP stream.
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream {
            tcp: Arc::new(tcp),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// A TLS session over `tcp`, its handshake done.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(tcp: TcpStream, session: super::tls::Session) -> Stream {
        Stream {
            tcp: Arc::new(tcp),
            tls: Some(Box::new(session)),
        }
    }

    /// The TLS session, if this stream is encrypted.
    #[cfg(feature = "tls")]
    pub(crate) fn session(&self) -> Option<&super::tls::Session> {
        self.tls.as_deref()
    }

    /// Whether bytes written to the socket must go through TLS first.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The socket under the stream: for its options and for writing
    /// bytes that are already what goes on the wire.
    pub fn tcp(&self) -> &Arc<TcpStream> {
        &self.tcp
    }

    /// How long one read of the socket may wait.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    /// How long one write to the socket may wait.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }

    /// Sends no more bytes (`Write`, `Both`) and, for `Both`, reads no
    /// more either. A TLS stream first says so to the client with a
    /// close_notify alert, as TLS asks (best effort: the client may be
    /// gone).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let (Some(tls), Shutdown::Write | Shutdown::Both) = (&self.tls, how) {
            let _ = tls.close_notify(&self.tcp);
        }
        self.tcp.shutdown(how)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.read(&self.tcp, buf);
        }
        (&*self.tcp).read(buf)
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            tls.write_all(&self.tcp, buf)?;
            return Ok(buf.len());
        }
        (&*self.tcp).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
