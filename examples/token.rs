//! Makes an HS256 token for the channels, world and blazing dialects, for
//! trying them out.
//!
//! ```text
//! cargo run --example token -- --key s3cret --sub 84a33aad-bacf-40b4-a1b5-910300e7e3fc \
//!     --name Steve --ttl 3600 --computer pc-1 --channel news --channel team-* --publish news
//! ```
//!
//! Flags: `--key` (the server's `--jwt-key`, required), `--sub` (the user,
//! required), `--name`, `--ttl` seconds until `exp` (default 3600),
//! `--computer` (repeatable: the blazing computers allowed; none means any),
//! `--channel` (repeatable: channels it may listen to, names or `prefix*`)
//! and `--publish` (repeatable: channels it may emit or publish to).

use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut key, mut sub, mut name, mut ttl, mut computers) =
        (None, None, None, 3600u64, Vec::new());
    let (mut channels, mut publish) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--key" => key = Some(value),
            "--sub" => sub = Some(value),
            "--name" => name = Some(value),
            "--ttl" => ttl = value.parse()?,
            "--computer" => computers.push(value),
            "--channel" => channels.push(value),
            "--publish" => publish.push(value),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let key = key.ok_or("--key is required")?;
    let mut claims =
        json!({"sub": sub.ok_or("--sub is required")?, "exp": switchboard::jwt::now() + ttl});
    if let Some(name) = name {
        claims["name"] = json!(name);
    }
    if !computers.is_empty() {
        claims["computers"] = json!(computers);
    }
    if !channels.is_empty() {
        claims["channels"] = json!(channels);
    }
    if !publish.is_empty() {
        claims["publish"] = json!(publish);
    }
    println!("{}", switchboard::jwt::sign(&claims, key.as_bytes()));
    Ok(())
}
