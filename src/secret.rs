//! Credentials kept out of everything peerlab shows or stores.
//!
//! Logs, error messages and recording metadata are shared (pasted into issues, attached to
//! recordings that travel), so a password must never reach them. This module is the one place
//! that knows what a secret looks like on a command line or in a URL; everything that logs an
//! address or stores the arguments a command ran with goes through it.
//!
//! Invariants:
//! - [`redact_url`] keeps scheme, host, port and path, and replaces any userinfo (`user:pass@`,
//!   or a bare token `token@`) with [`REDACTED`].
//! - [`redact_arguments`] replaces the value of every option in [`SECRET_OPTIONS`] (both the
//!   `--opt value` and the `--opt=value` form) and every URL's userinfo; other arguments are
//!   kept as given.
//!
//! This module imports nothing else of peerlab: every layer may use it.

/// This process's command line as text: an argument that is not UTF-8 (a file name, say) is
/// converted lossily instead of panicking as `std::env::args` would.
pub fn command_line() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The secret in `path`: its first line, trimmed. `what` names it in the error ("password",
/// "nkey seed"), which never contains the file's content.
pub fn read_secret_file(path: &std::path::Path, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))?;
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if first.is_empty() {
        return Err(format!("{what} file {} is empty", path.display()));
    }
    Ok(first)
}

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Command-line options whose value is a secret, with the option that reads it from a file.
pub const SECRET_OPTIONS: &[(&str, &str)] = &[
    ("--nats-password", "--nats-password-file"),
    ("--rpc-password", "--rpc-password-file"),
];

/// `url` without its userinfo: what is handed to libraries that log the addresses they use.
pub fn strip_userinfo(url: &str) -> String {
    redact_url(url).replacen(&format!("{REDACTED}@"), "", 1)
}

/// `url` with its userinfo (credentials or token) replaced by [`REDACTED`].
///
/// Works with or without a scheme (`nats://u:p@h:4222`, `u:p@h:4222`); text without an `@` in
/// its authority is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The authority ends at the first '/'; userinfo is what precedes its last '@'. ('?' and
    // '#' are not taken as ends: an unencoded password may contain them.)
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}{REDACTED}{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Redacts every URL in a comma-separated list (how `-a` takes several servers).
pub fn redact_url_list(list: &str) -> String {
    list.split(',')
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// A command line fit to log or store: secret option values and URL credentials redacted.
pub fn redact_arguments(arguments: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(arguments.len());
    let mut value_is_secret = false;
    for argument in arguments {
        if value_is_secret {
            out.push(REDACTED.to_string());
            value_is_secret = false;
            continue;
        }
        if let Some((option, _)) = argument.split_once('=') {
            if is_secret_option(option) {
                out.push(format!("{option}={REDACTED}"));
                continue;
            }
        }
        if is_secret_option(argument) {
            value_is_secret = true;
            out.push(argument.clone());
            continue;
        }
        out.push(redact_url_list(argument));
    }
    out
}

/// The secret-bearing options present on `arguments`, with the file option to use instead;
/// `"URL credentials"` when an argument carries credentials in a URL.
pub fn secrets_on_command_line(arguments: &[String]) -> Vec<(&'static str, &'static str)> {
    let mut found = Vec::new();
    for argument in arguments {
        let option = argument
            .split_once('=')
            .map_or(argument.as_str(), |(o, _)| o);
        if let Some(pair) = SECRET_OPTIONS.iter().find(|(name, _)| *name == option) {
            if !found.contains(pair) {
                found.push(*pair);
            }
        } else if redact_url_list(argument) != *argument {
            let pair = (
                "URL credentials",
                "--nats-user with --nats-password-file, or --nats-creds",
            );
            if !found.contains(&pair) {
                found.push(pair);
            }
        }
    }
    found
}

fn is_secret_option(option: &str) -> bool {
    SECRET_OPTIONS.iter().any(|(name, _)| *name == option)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_userinfo_and_keep_the_rest() {
        assert_eq!(
            redact_url("nats://alice:hunter2@10.0.0.1:4222"),
            "nats://<redacted>@10.0.0.1:4222"
        );
        assert_eq!(redact_url("tok3n@host:4222"), "<redacted>@host:4222");
        assert_eq!(
            redact_url("http://u:p%40ss@127.0.0.1:18443/wallet"),
            "http://<redacted>@127.0.0.1:18443/wallet"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(strip_userinfo("nats://a:b@h:1"), "nats://h:1");
        // An '@' after the authority is not userinfo.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        // Unencoded '#' and '?' in a password are still part of the userinfo.
        assert_eq!(redact_url("nats://u:p#w?x@h:1"), "nats://<redacted>@h:1");
        assert_eq!(
            redact_url_list("nats://a:b@h1:1,nats://h2:2"),
            "nats://<redacted>@h1:1,nats://h2:2"
        );
    }

    #[test]
    fn secret_options_are_redacted_in_both_forms() {
        let args: Vec<String> = [
            "peerlab",
            "record",
            "--nats-password",
            "s3cret",
            "--rpc-password=other",
            "-a",
            "nats://u:pw@h:4222",
            "-o",
            "x.mcap",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let joined = redact_arguments(&args).join(" ");
        assert_eq!(
            joined,
            "peerlab record --nats-password <redacted> --rpc-password=<redacted> -a nats://<redacted>@h:4222 -o x.mcap"
        );
        let found = secrets_on_command_line(&args);
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
