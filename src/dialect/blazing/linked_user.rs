//! Who a blazing token names. Two kinds of token reach the dialect:
//! switchboard's own, whose `sub` is the user's uuid and `name` the display
//! name (the design's claims), and the original plugin's, which signs a
//! whole `LinkedUser` as JSON text in `sub`:
//! `{"username":"Steve","uuid":"84a3…","level":0,"instant":…,
//! "expiresAt":…,"permissions":["READ_COMPUTERS",…]}`. Both work
//! unmodified.

use serde::Deserialize;

use crate::jwt::Claims;

/// The permissions the original plugin requires of a user who opens a
/// computer's editor (`BlazingWSS.REQUIRED_PERMISSIONS`).
const REQUIRED_PERMISSIONS: [&str; 3] = [
    "READ_COMPUTERS",
    "COMPUTER_CODE_READ",
    "COMPUTER_CODE_MODIFY",
];

/// The user behind a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The minecraft uuid: every message's `actioner`.
    pub uuid: String,
    /// The minecraft username, the document's `display`.
    pub display: Option<String>,
    /// Whether the token lets its holder edit: always for switchboard's
    /// tokens (their `computers` claim limits where), and for a
    /// `LinkedUser` only with every one of `REQUIRED_PERMISSIONS`.
    pub may_edit: bool,
}

/// The original plugin's `LinkedUser`, as far as it matters here.
#[derive(Deserialize)]
struct LinkedUser {
    uuid: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

impl TokenUser {
    /// Reads the user from `claims`: a `sub` holding a JSON object with a
    /// `uuid` is a `LinkedUser`; any other `sub` is the uuid itself.
    pub fn of(claims: &Claims) -> TokenUser {
        let linked = claims
            .sub
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<LinkedUser>(&claims.sub).ok())
            .flatten();
        match linked {
            Some(linked) => TokenUser {
                may_edit: REQUIRED_PERMISSIONS
                    .iter()
                    .all(|needed| linked.permissions.iter().any(|p| p == needed)),
                uuid: linked.uuid,
                display: claims.name.clone().or(linked.username),
            },
            None => TokenUser {
                uuid: claims.sub.clone(),
                display: claims.name.clone(),
                may_edit: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, name: Option<&str>) -> Claims {
        let claims = serde_json::json!({"sub": sub, "name": name, "exp": 1});
        serde_json::from_value(claims).unwrap()
    }

    #[test]
    fn a_plain_sub_is_the_uuid() {
        let user = TokenUser::of(&claims(
            "84a33aad-bacf-40b4-a1b5-910300e7e3fc",
            Some("Steve"),
        ));
        assert_eq!(user.uuid, "84a33aad-bacf-40b4-a1b5-910300e7e3fc");
        assert_eq!(user.display.as_deref(), Some("Steve"));
        assert!(user.may_edit);
    }

    #[test]
    fn a_linked_user_sub_gives_its_uuid_and_username() {
        let sub = r#"{"username":"Alex","uuid":"0f4e5a1c-0000-4000-8000-000000000001","level":3,"instant":1700000000,"expiresAt":1800000000,"permissions":["READ_COMPUTERS","COMPUTER_CODE_READ","COMPUTER_CODE_MODIFY"]}"#;
        let user = TokenUser::of(&claims(sub, None));
        assert_eq!(user.uuid, "0f4e5a1c-0000-4000-8000-000000000001");
        assert_eq!(user.display.as_deref(), Some("Alex"));
        assert!(user.may_edit);
    }

    #[test]
    fn a_linked_user_without_the_plugins_permissions_may_not_edit() {
        let sub = r#"{"username":"Alex","uuid":"u1","permissions":["READ_COMPUTERS"]}"#;
        let user = TokenUser::of(&claims(sub, None));
        assert_eq!(user.uuid, "u1");
        assert!(!user.may_edit);
    }

    #[test]
    fn a_sub_that_only_looks_like_json_is_a_plain_id() {
        for sub in ["{not json", r#"{"username":"no uuid"}"#] {
            let user = TokenUser::of(&claims(sub, None));
            assert_eq!(user.uuid, sub);
            assert!(user.may_edit);
        }
    }
}
