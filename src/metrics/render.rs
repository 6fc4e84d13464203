//! `GET /metrics`: every counter in Prometheus' text exposition format,
//! each series with its HELP and TYPE.

use std::fmt::Write as _;

use super::process::Process;
use super::{Dialect, HandshakeFailure, Metrics, PerDialect, TlsFailure};

impl Metrics {
    fn render_denials(&self, text: &mut String) {
        let name = "switchboard_access_denied_total";
        let _ = writeln!(
            text,
            "# HELP {name} Requests and messages refused by the access rules, by dialect (http: emits) and reason\n# TYPE {name} counter"
        );
        for ((place, reason), n) in self.access_denied.lock().iter() {
            let _ = writeln!(
                text,
                "{name}{{dialect=\"{place}\",reason=\"{reason}\"}} {n}"
            );
        }
    }

    /// The counters in Prometheus' text exposition format, with the
    /// router's queue depth (`queued`) and the process's memory and threads.
    pub fn render(&self, queued: usize) -> String {
        let mut text = String::new();
        let scalars: [(&str, &str, &str, u64); 13] = [
            (
                "switchboard_connections_open",
                "gauge",
                "WebSocket connections open now",
                self.connections_open.get(),
            ),
            (
                "switchboard_connections_total",
                "counter",
                "WebSocket connections accepted",
                self.connections_total.get(),
            ),
            (
                "switchboard_handshakes_open",
                "gauge",
                "Sockets in their HTTP exchange now",
                self.handshakes_open.get(),
            ),
            (
                "switchboard_emits_total",
                "counter",
                "HTTP emits received",
                self.emits.get(),
            ),
            (
                "switchboard_slow_consumer_disconnects_total",
                "counter",
                "Clients disconnected for a full outbound queue",
                self.slow_consumers.get(),
            ),
            (
                "switchboard_spooled_frames_total",
                "counter",
                "Large frames copied once and sent from the spool to many sockets",
                self.spooled_frames.get(),
            ),
            (
                "switchboard_router_panics_total",
                "counter",
                "Commands the router failed on (bugs)",
                self.router_panics.get(),
            ),
            (
                "switchboard_topics",
                "gauge",
                "Topics (groups, channels, rooms) that exist",
                self.topics.get(),
            ),
            (
                "switchboard_documents",
                "gauge",
                "Shared documents held in memory",
                self.documents.get(),
            ),
            (
                "switchboard_router_queue_depth",
                "gauge",
                "Commands waiting for the router",
                queued as u64,
            ),
            (
                "switchboard_connections_refused_per_ip_total",
                "counter",
                "Upgrades refused at the per-IP connection cap",
                self.connections_refused_per_ip.get(),
            ),
            (
                "switchboard_messages_rate_limited_total",
                "counter",
                "Client messages dropped over the rate limit",
                self.messages_rate_limited.get(),
            ),
            (
                "switchboard_rate_limit_disconnects_total",
                "counter",
                "Clients closed for staying over the rate limit",
                self.rate_limit_disconnects.get(),
            ),
        ];
        for (name, kind, help, value) in scalars {
            scalar(&mut text, name, kind, help, value);
        }
        let dialects: [(&str, &str, &str, &PerDialect); 5] = [
            (
                "switchboard_dialect_connections",
                "gauge",
                "WebSocket connections open now, by dialect",
                &self.connections,
            ),
            (
                "switchboard_messages_received_total",
                "counter",
                "Messages received from clients, by dialect",
                &self.messages_received,
            ),
            (
                "switchboard_bytes_received_total",
                "counter",
                "Payload bytes received from clients, by dialect",
                &self.bytes_received,
            ),
            (
                "switchboard_messages_sent_total",
                "counter",
                "Messages sent to clients (each a frame queued for its writer), by dialect",
                &self.messages_sent,
            ),
            (
                "switchboard_bytes_sent_total",
                "counter",
                "Bytes of the messages sent to clients (whole frames), by dialect",
                &self.bytes_sent,
            ),
        ];
        for (name, kind, help, counters) in dialects {
            let values = Dialect::ALL.map(|d| (d.name(), counters.of(d).get()));
            labelled(&mut text, name, kind, help, "dialect", &values);
        }
        let failures = HandshakeFailure::ALL.map(|f| (f.label(), self.failures(f)));
        labelled(
            &mut text,
            "switchboard_handshake_failures_total",
            "counter",
            "Failed HTTP exchanges and WebSocket handshakes, by reason",
            "reason",
            &failures,
        );
        if cfg!(feature = "tls") {
            self.render_tls(&mut text);
        }
        self.render_denials(&mut text);
        self.command_time.render(
            &mut text,
            "switchboard_router_command_seconds",
            "Time the router took over each command, deliveries included",
        );
        self.cluster.render(&mut text);
        let process = Process::read();
        scalar(
            &mut text,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory",
            process.rss_bytes,
        );
        scalar(
            &mut text,
            "process_threads",
            "gauge",
            "Threads of the process",
            process.threads,
        );
        // One file descriptor per connection: open fds against the limit
        // is the capacity signal.
        scalar(
            &mut text,
            "process_open_fds",
            "gauge",
            "Open file descriptors",
            process.open_fds,
        );
        scalar(
            &mut text,
            "process_max_fds",
            "gauge",
            "The open-file limit (soft)",
            process.max_fds,
        );
        let _ = write!(
            text,
            "# HELP process_cpu_seconds_total CPU time used, user and system\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total {:.2}\n\
             # HELP process_start_time_seconds When the process started, in seconds since the Unix epoch\n\
             # TYPE process_start_time_seconds gauge\n\
             process_start_time_seconds {:.2}\n",
            process.cpu_seconds, process.start_time
        );
        let _ = write!(
            text,
            "# HELP switchboard_build_info The running build (always 1)\n\
             # TYPE switchboard_build_info gauge\n\
             switchboard_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        text
    }
}

pub(super) fn scalar(text: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

impl Metrics {
    /// The TLS series: only a build that can serve TLS shows them.
    fn render_tls(&self, text: &mut String) {
        let name = "switchboard_tls_handshakes_total";
        let _ = write!(
            text,
            "# HELP {name} TLS handshakes completed\n# TYPE {name} counter\n{name} {}\n",
            self.tls_handshakes.get()
        );
        let failures = TlsFailure::ALL.map(|f| (f.label(), self.tls_failures(f)));
        labelled(
            text,
            "switchboard_tls_handshake_failures_total",
            "counter",
            "Failed TLS handshakes, by reason",
            "reason",
            &failures,
        );
    }
}

fn labelled(
    text: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) {
    let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    for (value_of_label, value) in values {
        let _ = writeln!(text, "{name}{{{label}=\"{value_of_label}\"}} {value}");
    }
}
