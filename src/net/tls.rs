//! TLS on the listening port (feature `tls`, `--tls-cert`, `--tls-key`):
//! the certificate and key, reloaded on SIGHUP; the handshake under the
//! handshake deadline; and one session per connection, shared by its
//! reader and writer threads.
//!
//! # One session, two threads, one short lock
//!
//! A `rustls::ServerConnection` is plain state: it turns ciphertext into
//! plaintext and back, and does no I/O of its own. A connection's reader
//! and writer share it under a [`Mutex`], and the rule that keeps either
//! thread from stalling the other is: **the lock is held only to move
//! bytes through the session, in memory; never across a read or a write
//! of the socket.**
//!
//! - The reader blocks in `read` on the *socket*, without the lock, into
//!   its own buffer; then takes the lock to hand those bytes to the
//!   session (`read_tls`, `process_new_packets`) and take out what they
//!   decrypt to (`reader()`), and lets go.
//! - The writer takes the lock to seal a whole batch of frames
//!   (`writer()`, then `write_tls` into a `Vec`), lets go, and only then
//!   writes the ciphertext to the socket, with the same stall and abort
//!   rules as a plain socket ([`super::writer`]).
//!
//! So each holds the lock for as long as a memory copy and a cipher pass
//! take, whatever the client does. Ciphertext still leaves in the order
//! the session produced it because, once the handshake is done, only the
//! writer thread writes to the socket (as for plain sockets: see
//! [`super::connection`], "Why exactly one thread writes"). What the
//! reader's side of the session queues for the client (a TLS 1.3
//! KeyUpdate answer, an alert) waits in the session and goes out with the
//! writer's next batch, at the latest the next keepalive ping. The
//! router's write-through, which writes frames straight to a plain socket
//! while the writer is idle, is off for TLS connections: their outbox is
//! made without the socket.
//!
//! Before the split there is one thread: the handshake, the HTTP request
//! and the `101` answer read and write the session directly, each socket
//! operation bounded by what is left of the handshake deadline.
//!
//! # Limits
//!
//! The TLS handshake runs under the same deadline as the request head that
//! follows it (`--handshake-timeout-ms`) and holds the same slot among the
//! sockets in their handshake (`--max-handshakes`), so half-finished
//! handshakes are cut like slow request heads. A handshake may read at
//! most [`MAX_HANDSHAKE_BYTES`]. A client that speaks plain HTTP to the
//! TLS port gets a plain `400` saying so, at once.

use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerConnection;
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, ServerConfig};

use super::stream::Stream;
use crate::log;
use crate::metrics::{Metrics, TlsFailure};

/// The most bytes a TLS handshake may read: a ClientHello is a few hundred
/// bytes to a few KiB (post-quantum key shares included); the rest of a
/// client's handshake, without client certificates, is smaller still.
pub const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;
/// The first byte of every TLS record that starts a handshake.
const HANDSHAKE_RECORD: u8 = 0x16;
/// How long a refusal may take to write, at the least: the deadline may
/// already be close.
const MIN_WRITE_TIME: Duration = Duration::from_millis(100);

/// Why a certificate and key cannot be served.
#[derive(Debug)]
pub enum TlsError {
    /// A file cannot be read.
    Unreadable {
        /// The file, as configured.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key file holds no PEM private key, or a broken one.
    NoKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refuses the pair: a key of an unsupported kind, or one that
    /// is not the certificate's.
    Refused(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            TlsError::NoCertificate { path, why } => write!(
                f,
                "{} holds no usable PEM certificate (--tls-cert): {why}",
                path.display()
            ),
            TlsError::NoKey { path, why } => write!(
                f,
                "{} holds no usable PEM private key (--tls-key): {why}",
                path.display()
            ),
            TlsError::Refused(error) => write!(
                f,
                "the certificate and key cannot be served together: {error}"
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// The server's side of TLS: the certificate and key new connections are
/// served with. A reload replaces them for the connections that start
/// after it; open connections keep the session they have.
#[derive(Debug)]
pub struct Acceptor {
    config: RwLock<Arc<ServerConfig>>,
}

impl Acceptor {
    /// Loads the PEM certificate chain at `cert` (the server's certificate
    /// first) and the PEM private key at `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Acceptor, TlsError> {
        Ok(Acceptor {
            config: RwLock::new(server_config(cert, key)?),
        })
    }

    /// Loads `cert` and `key` again (SIGHUP): on success new connections
    /// use them; on failure the old pair stays, and the error says why.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let config = server_config(cert, key)?;
        *self.config.write() = config;
        Ok(())
    }

    /// Runs the server's side of the handshake on `tcp` by `deadline`.
    /// On failure the socket is handed back with why, already answered
    /// where an answer helps (an alert, or for plain HTTP a `400`).
    pub fn accept(
        &self,
        tcp: TcpStream,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Result<Stream, (TcpStream, TlsFailure)> {
        let config = self.config.read().clone();
        match handshake(&tcp, config, deadline) {
            Ok(session) => {
                metrics.tls_handshakes.increment();
                Ok(Stream::tls(tcp, session))
            }
            Err(failure) => {
                metrics.tls_failed(failure);
                Err((tcp, failure))
            }
        }
    }
}

/// The rustls configuration for the pair of files: TLS 1.2 and 1.3 with
/// the `ring` provider's safe defaults, no client certificates, HTTP/1.1
/// as the only ALPN protocol (browsers and curl would otherwise try h2).
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read(cert)?;
    let certs = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NoCertificate {
            path: cert.into(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.into(),
            why: "no \"BEGIN CERTIFICATE\" block".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::NoKey {
        path: key.into(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(ring::default_provider());
    // Refuse a key that is not the certificate's now, rather than fail
    // every handshake later.
    let signing = provider
        .key_provider
        .load_private_key(private.clone_key())
        .map_err(TlsError::Refused)?;
    CertifiedKey::new(certs.clone(), signing)
        .keys_match()
        .map_err(TlsError::Refused)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Refused)?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(TlsError::Refused)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|error| TlsError::Unreadable {
        path: path.into(),
        error,
    })
}

/// The handshake, on the one thread that serves the socket so far.
fn handshake(
    mut tcp: &TcpStream,
    config: Arc<ServerConfig>,
    deadline: Instant,
) -> Result<Session, TlsFailure> {
    refuse_plaintext(tcp, deadline)?;
    let mut session = ServerConnection::new(config).map_err(|e| {
        log::warn!("tls: cannot start a session: {e}");
        TlsFailure::Protocol
    })?;
    // The writer seals whole batches, bounded by --max-queued-bytes.
    session.set_buffer_limit(None);
    let mut read = 0;
    while session.is_handshaking() {
        if session.wants_write() {
            flush(&mut session, tcp, deadline)?;
            continue;
        }
        set_timeout(tcp.set_read_timeout(Some(left(deadline)?)))?;
        let got = match session.read_tls(&mut tcp) {
            Ok(0) => return Err(TlsFailure::Closed),
            Ok(got) => got,
            Err(e) if is_timeout(&e) => continue, // `left` checks the deadline
            Err(_) => return Err(TlsFailure::Closed),
        };
        read += got;
        if read > MAX_HANDSHAKE_BYTES {
            return Err(TlsFailure::TooLarge);
        }
        if let Err(error) = session.process_new_packets() {
            // The alert that says why, if the client still listens.
            let _ = flush(&mut session, tcp, deadline);
            log::debug!("tls: handshake failed: {error}");
            return Err(failure(&error));
        }
    }
    // The last flight (and TLS 1.3's session tickets).
    flush(&mut session, tcp, deadline)?;
    Ok(Session {
        session: Mutex::new(session),
    })
}

/// Looks at the first byte without taking it: anything but a TLS
/// handshake record is refused at once. A plain HTTP client is told in
/// plain HTTP what to use instead.
fn refuse_plaintext(tcp: &TcpStream, deadline: Instant) -> Result<(), TlsFailure> {
    let mut first = [0u8; 1];
    loop {
        set_timeout(tcp.set_read_timeout(Some(left(deadline)?)))?;
        match tcp.peek(&mut first) {
            Ok(0) => return Err(TlsFailure::Closed),
            Ok(_) => break,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(TlsFailure::Closed),
        }
    }
    if first[0] == HANDSHAKE_RECORD {
        return Ok(());
    }
    if first[0].is_ascii_uppercase() {
        let _ = tcp.set_write_timeout(Some(MIN_WRITE_TIME));
        let _ = super::http::Response::text(400, "this port speaks TLS: use https:// or wss://\n")
            .write_to(tcp);
    }
    Err(TlsFailure::Plaintext)
}

/// Writes everything the session has for the client, by `deadline`.
fn flush(
    session: &mut ServerConnection,
    mut tcp: &TcpStream,
    deadline: Instant,
) -> Result<(), TlsFailure> {
    let mut out = Vec::new();
    while session.wants_write() {
        if session.write_tls(&mut out).is_err() {
            return Err(TlsFailure::Protocol);
        }
    }
    let time = left(deadline)?.max(MIN_WRITE_TIME);
    set_timeout(tcp.set_write_timeout(Some(time)))?;
    tcp.write_all(&out).map_err(|e| match is_timeout(&e) {
        true => TlsFailure::Timeout,
        false => TlsFailure::Closed,
    })
}

/// What is left before `deadline`, or the timeout failure.
fn left(deadline: Instant) -> Result<Duration, TlsFailure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(TlsFailure::Timeout);
    }
    Ok(left)
}

/// A socket option that cannot be set means a socket already broken.
fn set_timeout(result: io::Result<()>) -> Result<(), TlsFailure> {
    result.map_err(|_| TlsFailure::Closed)
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The `/metrics` reason for a failed handshake.
fn failure(error: &rustls::Error) -> TlsFailure {
    use rustls::Error;
    match error {
        Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied,
        ) => TlsFailure::Certificate,
        Error::PeerIncompatible(_)
        | Error::AlertReceived(
            AlertDescription::ProtocolVersion
            | AlertDescription::HandshakeFailure
            | AlertDescription::InsufficientSecurity,
        ) => TlsFailure::Incompatible,
        _ => TlsFailure::Protocol,
    }
}

/// One connection's TLS session, shared by its reader and writer: see the
/// module documentation for the lock's one rule.
#[derive(Debug)]
pub struct Session {
    session: Mutex<ServerConnection>,
}

impl Session {
    /// Reads plaintext: what the session has decrypted already, else
    /// ciphertext from `tcp` (blocking, without the lock, into `buf`
    /// itself), handed to the session and read back out decrypted. `0`
    /// is the end: the client's close_notify, or the socket closed.
    pub fn read(&self, mut tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.session.lock().reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            // Nothing decrypted yet: wait for the socket, lock released.
            let got = tcp.read(buf)?;
            if got == 0 {
                return Ok(0);
            }
            let mut session = self.session.lock();
            let mut input = &buf[..got];
            while !input.is_empty() {
                session.read_tls(&mut input)?;
                session
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
    }

    /// Encrypts `slices` in order, and everything the session had queued
    /// before them, into the bytes to put on the wire.
    pub fn seal(&self, slices: &[&[u8]]) -> io::Result<Vec<u8>> {
        let length: usize = slices.iter().map(|slice| slice.len()).sum();
        // A record adds at most 22 bytes of header, tag and padding per 16 KiB.
        let mut out = Vec::with_capacity(length + length / 512 + 64);
        let mut session = self.session.lock();
        for slice in slices {
            // Unlimited buffers (see `handshake`): `write_all` takes it all.
            session.writer().write_all(slice)?;
        }
        while session.wants_write() {
            session.write_tls(&mut out)?;
        }
        Ok(out)
    }

    /// Encrypts `plaintext` and writes it to `tcp` (before the reader and
    /// writer threads start, and for their last words).
    pub fn write_all(&self, mut tcp: &TcpStream, plaintext: &[u8]) -> io::Result<()> {
        let sealed = self.seal(&[plaintext])?;
        tcp.write_all(&sealed)
    }

    /// Tells the client this side sends no more (a close_notify alert).
    pub fn close_notify(&self, mut tcp: &TcpStream) -> io::Result<()> {
        self.session.lock().send_close_notify();
        let sealed = self.seal(&[])?;
        tcp.write_all(&sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_refused_with_their_names() {
        let dir = std::env::temp_dir().join(format!("switchboard-tls-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        fs::write(&empty, "not pem\n").unwrap();
        let missing = dir.join("missing.pem");
        let error = Acceptor::load(&missing, &empty).unwrap_err();
        assert!(matches!(error, TlsError::Unreadable { .. }), "{error}");
        assert!(error.to_string().contains("missing.pem"), "{error}");
        let error = Acceptor::load(&empty, &empty).unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains("--tls-cert"), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn refused_certificates_are_counted_as_such() {
        let refused = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert_eq!(failure(&refused), TlsFailure::Certificate);
        let old = rustls::Error::AlertReceived(AlertDescription::ProtocolVersion);
        assert_eq!(failure(&old), TlsFailure::Incompatible);
    }
}
