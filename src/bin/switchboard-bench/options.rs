//! The command line: scenarios, flags and their defaults.

use std::fmt;
use std::time::Duration;

use crate::client::Target;
use crate::proc::pin;
use crate::subscribers::ReceiverMode;
use crate::Res;

pub const USAGE: &str = "\
usage: switchboard-bench <fanout|idle|churn|baseline> [flags]
       switchboard-bench --smoke [flags]          (all scenarios, tiny sizes)

  --url URL            server to drive (ws://, loopback only)
                       [ws://127.0.0.1:8080/ws/concierge]
  --server-pid PID     also report the server's CPU time, memory and threads
  --no-subprotocol     do not offer the ert-concierge subprotocol
  --pin                server (--server-pid) on CPU 0, the bench on the others
  --smoke              tiny sizes; exit 1 unless everything was delivered
fanout and baseline:
  --subscribers S      [1000]     --messages M        [20000]
  --publish-url URL    (fanout) the publisher's server: another node of a cluster [--url]
  --payload BYTES      [200]      --rate R            [0 = flat out] msgs/s
  --timeout-s SECS     [60]       --compare           (fanout: run baseline after)
  --frame-bytes N      (baseline) size of each frame [the bare MESSAGE's]
  --receivers epoll|threads   one thread for all subscribers, or one each [epoll]
idle:
  --connections N      [1000]     --hold-s SECS       [2]
churn:
  --seconds T          [5]        --workers W         [2]
";

#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    Fanout,
    Idle,
    Churn,
    Baseline,
}

impl Scenario {
    pub fn parse(name: &str) -> Res<Scenario> {
        Ok(match name {
            "fanout" => Scenario::Fanout,
            "idle" => Scenario::Idle,
            "churn" => Scenario::Churn,
            "baseline" => Scenario::Baseline,
            _ => return Err(format!("unknown scenario {name:?}\n{USAGE}").into()),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub url: String,
    pub server_pid: Option<u32>,
    pub subprotocol: bool,
    pub subscribers: usize,
    /// Where the fanout's publisher connects: another node of a cluster
    /// (`--publish-url`); `None`: `url`, like the subscribers.
    pub publish_url: Option<String>,
    pub messages: u64,
    pub payload: usize,
    /// Messages per second; 0 sends flat out.
    pub rate: f64,
    pub timeout: Duration,
    pub compare: bool,
    pub frame_bytes: Option<usize>,
    pub connections: usize,
    pub hold: Duration,
    pub seconds: Duration,
    pub workers: usize,
    pub smoke: bool,
    /// Pin the server (`--server-pid`) to CPU 0 and this process to the
    /// other CPUs, so that a many-threaded server is measured on one core.
    pub pin: bool,
    /// How `fanout` and `baseline` receive (`--receivers`).
    pub receivers: ReceiverMode,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            url: "ws://127.0.0.1:8080/ws/concierge".into(),
            server_pid: None,
            subprotocol: true,
            subscribers: 1000,
            publish_url: None,
            messages: 20_000,
            payload: 200,
            rate: 0.0,
            timeout: Duration::from_secs(60),
            compare: false,
            frame_bytes: None,
            connections: 1000,
            hold: Duration::from_secs(2),
            seconds: Duration::from_secs(5),
            workers: 2,
            smoke: false,
            pin: false,
            receivers: ReceiverMode::Epoll,
        }
    }
}

impl Options {
    /// The sizes `--smoke` starts from; flags given with it still win.
    pub fn smoke() -> Options {
        Options {
            subscribers: 5,
            messages: 50,
            timeout: Duration::from_secs(20),
            connections: 20,
            hold: Duration::from_secs(1),
            seconds: Duration::from_secs(1),
            smoke: true,
            ..Options::default()
        }
    }

    pub fn set(&mut self, flag: &str, value: &str) -> Res<()> {
        let bad = |e: &dyn fmt::Display| format!("{flag} {value:?}: {e}");
        let seconds = |v: &str| -> Res<Duration> {
            let secs: f64 = v.parse().map_err(|e| bad(&e))?;
            Duration::try_from_secs_f64(secs).map_err(|e| bad(&e).into())
        };
        match flag {
            "--url" => self.url = value.to_string(),
            "--server-pid" => self.server_pid = Some(value.parse().map_err(|e| bad(&e))?),
            "--subscribers" => self.subscribers = value.parse().map_err(|e| bad(&e))?,
            "--publish-url" => self.publish_url = Some(value.to_string()),
            "--messages" => self.messages = value.parse().map_err(|e| bad(&e))?,
            "--payload" => self.payload = value.parse().map_err(|e| bad(&e))?,
            "--rate" => self.rate = value.parse().map_err(|e| bad(&e))?,
            "--timeout-s" => self.timeout = seconds(value)?,
            "--frame-bytes" => self.frame_bytes = Some(value.parse().map_err(|e| bad(&e))?),
            "--connections" => self.connections = value.parse().map_err(|e| bad(&e))?,
            "--hold-s" => self.hold = seconds(value)?,
            "--seconds" => self.seconds = seconds(value)?,
            "--workers" => self.workers = value.parse().map_err(|e| bad(&e))?,
            "--receivers" => {
                self.receivers = match value {
                    "epoll" => ReceiverMode::Epoll,
                    "threads" => ReceiverMode::Threads,
                    _ => return Err(bad(&"epoll or threads").into()),
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
        Ok(())
    }

    pub fn target(&self) -> Res<Target> {
        Target::parse(&self.url, self.subprotocol)
    }

    /// The fanout publisher's server.
    pub fn publish_target(&self) -> Res<Target> {
        Target::parse(
            self.publish_url.as_ref().unwrap_or(&self.url),
            self.subprotocol,
        )
    }
}

pub fn parse_args(args: Vec<String>) -> Res<(Option<Scenario>, Options)> {
    // `--smoke` changes the defaults, so look for it before the other flags.
    let mut options = if args.iter().any(|a| a == "--smoke") {
        Options::smoke()
    } else {
        Options::default()
    };
    let mut scenario = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {}
            "--compare" => options.compare = true,
            "--no-subprotocol" => options.subprotocol = false,
            "--pin" => options.pin = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => {
                let value = args.next().ok_or(format!("{flag} needs a value"))?;
                options.set(flag, &value)?;
            }
            name if scenario.is_none() => scenario = Some(Scenario::parse(name)?),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
        }
    }
    if scenario.is_none() && !options.smoke {
        return Err(format!("which scenario?\n{USAGE}").into());
    }
    if options.subscribers == 0 || options.workers == 0 {
        return Err("--subscribers and --workers must be at least 1".into());
    }
    if options.pin {
        pin(options.server_pid)?;
    }
    Ok((scenario, options))
}
