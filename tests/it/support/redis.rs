//! A real `redis-server` (Debian's package; `.ci/run` installs it) on a
//! loopback port of its own, for the cluster tests; killed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;

/// A running Redis without persistence: a restart starts it empty, as a
/// crashed cache would come back.
pub struct Redis {
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
}

/// How a launch ended: Redis listening, or the port taken (by whatever
/// bound it since it was picked: another test's Redis, say).
enum Launch {
    Ready,
    PortTaken,
}

/// How many fresh ports `start` tries before giving up.
const PORT_ATTEMPTS: usize = 20;

impl Redis {
    /// Starts a Redis on a free port. Redis cannot pick a port and report
    /// it, so the kernel picks one (bind to port 0, release it); if
    /// something binds it before Redis does (tests in one binary start
    /// their Redis concurrently), Redis says so and exits, and the start is
    /// tried again on another port.
    pub fn start() -> Redis {
        for _ in 0..PORT_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut redis = Redis { child: None, port };
            match redis.launch() {
                Launch::Ready => return redis,
                Launch::PortTaken => continue,
            }
        }
        panic!("redis-server found no free port in {PORT_ATTEMPTS} attempts");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits until the port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port (the nodes' URL names it).
    pub fn restart(&mut self) {
        self.stop();
        match self.launch() {
            Launch::Ready => {}
            Launch::PortTaken => panic!("port {} was taken while Redis was down", self.port),
        }
    }

    /// Runs redis-server on `self.port` and waits until it says it is
    /// ready, which only the process that bound the port says: a ping
    /// could be answered by another test's Redis on a port taken between
    /// the pick and this launch.
    fn launch(&mut self) -> Launch {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("redis-server is not installed: `apt-get install redis-server` (.ci/run does)");
        let mut child = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        // Redis logs to its standard output; a thread reads it to the end,
        // so that Redis never blocks on a full pipe, and hands over lines
        // until it is ready.
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        let mut log = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("Ready to accept connections") => break,
                Ok(line) => log.push(line),
                // Its output ended: it exited.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    self.stop();
                    if log.iter().any(|l| l.contains("Address already in use")) {
                        return Launch::PortTaken;
                    }
                    panic!("redis-server exited:\n{}", log.join("\n"));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.stop();
                    panic!("redis-server did not start:\n{}", log.join("\n"));
                }
            }
        }
        assert!(self.answers_ping(), "redis-server ready but not answering");
        Launch::Ready
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    }

    /// Runs one command (inline, space-separated words) and returns its
    /// first reply line.
    pub fn command(&self, words: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(format!("{words}\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
