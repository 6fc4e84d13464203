//! The `--help` text: every flag from the one table, then every endpoint
//! from the one list the banner and `GET /` print too.

use super::flags::FLAGS;

/// The `--help` text.
pub fn usage() -> String {
    let mut text = String::from(
        "switchboard: a WebSocket hub speaking several real-time protocols\n\n\
         usage: switchboard [FLAGS]\n\nflags (each also SWITCHBOARD_<FLAG> in the environment,\n\
         and <flag> = VALUE in the --config file):\n",
    );
    // `--name ARG` in one column, what it does in the next.
    let mut rows: Vec<(String, &str)> = FLAGS
        .iter()
        .map(|flag| {
            let (arg, what) = split_usage(flag.usage);
            let head = match arg {
                "" => format!("--{}", flag.name),
                arg => format!("--{} {arg}", flag.name),
            };
            (head, what)
        })
        .collect();
    rows.push(("--help".into(), "print this text"));
    rows.push(("--version".into(), "print the version"));
    let width = rows.iter().map(|(head, _)| head.len()).max().unwrap_or(0);
    for (head, what) in rows {
        text.push_str(&format!("  {head:<width$}  {what}\n"));
    }
    text.push_str("\nendpoints:\n");
    let endpoints = crate::net::endpoints::ENDPOINTS;
    let width = endpoints
        .iter()
        .map(|e| e.request_line().len())
        .max()
        .unwrap_or(0);
    for endpoint in endpoints {
        let line = endpoint.request_line();
        text.push_str(&format!("  {line:<width$}  {}\n", endpoint.what));
    }
    text
}

/// A flag's usage text split into its argument (`N`, `TEXT`; empty for a
/// switch) and what the flag does.
fn split_usage(usage: &str) -> (&str, &str) {
    match usage.split_once(' ') {
        Some((arg, what)) if !arg.is_empty() => (arg, what.trim_start()),
        _ => ("", usage.trim_start()),
    }
}

/// Every flag's name, for tests and tools that check the help is whole.
pub fn flag_names() -> impl Iterator<Item = &'static str> {
    FLAGS.iter().map(|flag| flag.name)
}
