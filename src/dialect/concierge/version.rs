//! Semantic-version compatibility between a client and this server.

/// A `MAJOR.MINOR.PATCH` version; pre-release and build suffixes are ignored
/// for compatibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
}

impl Version {
    /// Parses `1.2.3`, `1.2.3-beta.1`, `1.2.3+build`. Anything else is `None`.
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|part| {
            let is_number = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            is_number.then(|| part.parse::<u64>().ok()).flatten()
        });
        let version = Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }

    /// Whether a client of version `self` can talk to a server of `server`:
    /// same major version, and for `0.x` (where every minor release may
    /// break) the same minor version too. Patch levels never matter.
    pub fn compatible_with(&self, server: &Version) -> bool {
        self.major == server.major && (self.major != 0 || self.minor == server.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    fn compatible(client: &str, server: &str) -> bool {
        Version::parse(client)
            .unwrap()
            .compatible_with(&Version::parse(server).unwrap())
    }

    #[test]
    fn parses_semver_and_ignores_suffixes() {
        assert_eq!(Version::parse("0.1.0").map(|v| v.patch), Some(0));
        assert_eq!(
            Version::parse("1.22.333-rc.1+abc").map(|v| v.minor),
            Some(22)
        );
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1..3",
            "-1.2.3",
            "1.2.x",
            "99999999999999999999.0.0",
            " 1.2.3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn zero_major_needs_same_minor() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.7", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.1.0", "0.1.0"));
    }

    #[test]
    fn nonzero_major_needs_same_major_only() {
        assert!(compatible("1.9.0", "1.2.0"));
        assert!(!compatible("2.0.0", "1.2.0"));
    }
}
