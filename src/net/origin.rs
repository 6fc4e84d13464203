//! Which browser pages may talk to the hub (`--allowed-origins`).
//!
//! A browser lets any page open a WebSocket to any host, and tells the
//! host which page asked in the `Origin` header; without a check, every
//! web site a user visits could read and write the hub from the user's
//! machine. So a request that carries an `Origin` is served only if that
//! origin is the server's own (the embedded pages) or one the operator
//! listed. Programs other than browsers send no `Origin` and are not
//! affected.

use std::fmt;

use crate::wire::request::ClientRequest;

/// The origins the operator allows besides the server's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// `*`: any origin at all.
    any: bool,
    /// Origins as `scheme://host[:port]`, lowercased.
    listed: Vec<String>,
}

impl AllowedOrigins {
    /// Reads a comma-separated list of origins; `*` allows any.
    pub fn parse(list: &str) -> Result<AllowedOrigins, &'static str> {
        let mut allowed = AllowedOrigins::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                allowed.any = true;
                continue;
            }
            let entry = entry.trim_end_matches('/');
            if authority(entry).is_none() {
                return Err("origins as scheme://host[:port] (e.g. https://app.example.com), or *");
            }
            allowed.listed.push(entry.to_ascii_lowercase());
        }
        Ok(allowed)
    }

    /// Whether `request` may be served: it has no `Origin`, or its origin
    /// is the server's own (its host is the request's `Host`), or listed.
    /// The refusal names the origin.
    pub fn check(&self, request: &ClientRequest) -> Result<(), String> {
        let Some(origin) = request.header("origin") else {
            return Ok(());
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let own = match (authority(&origin), request.header("host")) {
            (Some(from), Some(host)) => from.eq_ignore_ascii_case(host.trim()),
            _ => false,
        };
        if self.any || own || self.listed.contains(&origin) {
            Ok(())
        } else {
            Err(origin)
        }
    }
}

/// The `host[:port]` of `scheme://host[:port]`.
fn authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    let valid = !scheme.is_empty() && !rest.is_empty() && !rest.contains('/');
    valid.then_some(rest)
}

impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries = self.listed.clone();
        if self.any {
            entries.insert(0, "*".to_string());
        }
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> ClientRequest {
        ClientRequest::for_test("GET", "/x/listen", headers)
    }

    #[test]
    fn own_listed_and_absent_origins_pass_foreign_ones_do_not() {
        let allowed =
            AllowedOrigins::parse("https://app.example.com, http://Other.test:8000/").unwrap();
        let host = ("host", "hub.example.com:8080");
        assert_eq!(allowed.check(&request(&[host])), Ok(()));
        let own = ("origin", "http://hub.example.com:8080");
        assert_eq!(allowed.check(&request(&[host, own])), Ok(()));
        let own_https = ("origin", "https://HUB.example.com:8080");
        assert_eq!(allowed.check(&request(&[host, own_https])), Ok(()));
        let listed = ("origin", "https://app.example.com");
        assert_eq!(allowed.check(&request(&[host, listed])), Ok(()));
        let listed = ("origin", "http://other.test:8000");
        assert_eq!(allowed.check(&request(&[host, listed])), Ok(()));
        let foreign = ("origin", "https://evil.test");
        assert_eq!(
            allowed.check(&request(&[host, foreign])),
            Err("https://evil.test".into())
        );
        let other_port = ("origin", "http://hub.example.com:9999");
        assert!(allowed.check(&request(&[host, other_port])).is_err());
        assert!(allowed
            .check(&request(&[host, ("origin", "null")]))
            .is_err());
        assert!(allowed.check(&request(&[("origin", "http://x")])).is_err());
        let any = AllowedOrigins::parse("*").unwrap();
        assert_eq!(any.check(&request(&[host, foreign])), Ok(()));
        assert!(AllowedOrigins::parse("app.example.com").is_err());
        assert_eq!(
            allowed.to_string(),
            "https://app.example.com,http://other.test:8000"
        );
    }
}
