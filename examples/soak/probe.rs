//! The server under soak: started from the built binary (or a running one
//! named by address and pid), and what it holds, read from /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the started server may take to print its address.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// The server the soak talks to.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id, for /proc.
    pub pid: u32,
    /// The process, if the soak started it (killed when dropped), and the
    /// data directory it was given (removed when dropped).
    started: Option<(Child, PathBuf)>,
}

impl Server {
    /// Starts `binary` on a port of its own choosing, with a data
    /// directory of its own and `jwt_key`, quiet; its warnings go to our
    /// standard error. Short ping and heartbeat intervals keep those
    /// timers busy during the soak.
    pub fn start(binary: &Path, jwt_key: &str) -> Result<Server, String> {
        let data_dir =
            std::env::temp_dir().join(format!("switchboard-soak-{}", std::process::id()));
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--quiet", "--jwt-key", jwt_key])
            .args(["--secret", super::traffic::SECRET])
            .args(["--ping-ms", "2000", "--heartbeat-ms", "2000"])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
        let (found, address) = mpsc::channel();
        // Keeps reading stdout so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = line
                    .trim()
                    .strip_prefix("ws://")
                    .and_then(|rest| rest.split_once("/ws/concierge"))
                    .and_then(|(addr, _)| addr.parse::<SocketAddr>().ok());
                if let Some(addr) = addr {
                    let _ = found.send(addr);
                }
            }
        });
        let pid = child.id();
        let started = Some((child, data_dir));
        let addr = address
            .recv_timeout(START_PATIENCE)
            .map_err(|_| format!("{} did not print its address", binary.display()))?;
        Ok(Server { addr, pid, started })
    }

    /// A server that is already running.
    pub fn running(addr: SocketAddr, pid: u32) -> Server {
        Server {
            addr,
            pid,
            started: None,
        }
    }

    /// What the server holds now.
    pub fn usage(&self) -> Result<Usage, String> {
        Usage::of(self.pid)
    }

    /// `GET path` over plain HTTP: the status code and the body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        http(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n"),
        )
    }

    /// A counter or gauge without labels from `/metrics`.
    pub fn metric(&self, name: &str) -> Result<u64, String> {
        let (_, text) = self.get("/metrics")?;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .ok_or(format!("no metric {name}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((child, data_dir)) = &mut self.started {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
}

/// Sends `request` and reads the whole answer: its status and body.
pub fn http(addr: SocketAddr, request: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send the request: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read the answer: {e}"))?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or(format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

/// One reading of a process's resources.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub fds: u64,
}

impl Usage {
    /// Reads `pid`'s `VmRSS` and `Threads` from /proc/PID/status and counts
    /// /proc/PID/fd.
    pub fn of(pid: u32) -> Result<Usage, String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e} (is the server running?)"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .ok_or(format!("no {name} in /proc/{pid}/status"))
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
            .count() as u64;
        Ok(Usage {
            rss_kib: field("VmRSS")?,
            threads: field("Threads")?,
            fds,
        })
    }
}
