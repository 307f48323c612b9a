//! NATS connection options, as a deployment needs them (the command line builds them in the
//! binary's `cli` layer).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};

use super::BusError;

/// Everything needed to open (and keep open) a NATS connection.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URLs (`nats://host:port`, `tls://host:port`, or `host:port`).
    pub addresses: Vec<String>,
    /// User for user/password auth.
    pub user: Option<String>,
    /// Password for user/password auth.
    pub password: Option<String>,
    /// File with the password (first line).
    pub password_file: Option<PathBuf>,
    /// `.creds` file.
    pub creds_file: Option<PathBuf>,
    /// nkey seed file.
    pub nkey_file: Option<PathBuf>,
    /// CA certificate; enables TLS.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    pub tls_cert: Option<PathBuf>,
    /// Client key for mutual TLS.
    pub tls_key: Option<PathBuf>,
    /// How long to keep trying at start-up; `None` waits forever.
    pub wait: Option<Duration>,
    /// Pause between start-up attempts.
    pub retry_interval: Duration,
    /// How often a "still waiting" line is logged during start-up.
    pub log_period: Duration,
    /// Connection name shown by the server (`connz`).
    pub name: String,
    /// Lower bound of the pause between reconnect attempts after a lost connection.
    pub min_reconnect_delay: Duration,
    /// Upper bound of the pause between reconnect attempts after a lost connection.
    pub max_reconnect_delay: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            addresses: vec!["nats://127.0.0.1:4222".to_string()],
            user: None,
            password: None,
            password_file: None,
            creds_file: None,
            nkey_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            wait: None,
            retry_interval: Duration::from_millis(250),
            log_period: Duration::from_secs(5),
            name: "peerlab".to_string(),
            min_reconnect_delay: Duration::ZERO,
            max_reconnect_delay: Duration::from_secs(2),
        }
    }
}

impl NatsOptions {
    /// Options for a single local server, as the embedded harness starts it.
    pub fn local(url: impl Into<String>) -> Self {
        NatsOptions {
            addresses: vec![url.into()],
            ..NatsOptions::default()
        }
    }

    /// The user (or token) and password written into the first address that has any,
    /// percent-decoded.
    fn url_credentials(&self) -> Result<Option<(String, Option<String>)>, BusError> {
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let mut found = None;
        for address in &self.addresses {
            let addr = address.parse::<ServerAddr>().map_err(|e| {
                BusError::InvalidOption(format!(
                    "bad NATS address `{}`: {e}",
                    crate::secret::redact_url(address)
                ))
            })?;
            if let Some(user) = addr.username() {
                found = Some((decode(user), addr.password().map(decode)));
                break;
            }
        }
        Ok(found)
    }

    /// Parses the addresses, with a message naming the bad one. Credentials in them are left
    /// out (async-nats logs the addresses it dials; see `url_credentials`).
    pub fn server_addrs(&self) -> Result<Vec<ServerAddr>, BusError> {
        if self.addresses.is_empty() {
            return Err(BusError::InvalidOption(
                "no NATS address given (-a/--nats-address)".into(),
            ));
        }
        self.addresses
            .iter()
            .map(|a| {
                crate::secret::strip_userinfo(a)
                    .parse::<ServerAddr>()
                    .map_err(|e| {
                        BusError::InvalidOption(format!(
                            "bad NATS address `{}`: {e}",
                            crate::secret::redact_url(a)
                        ))
                    })
            })
            .collect()
    }

    /// Builds async-nats options: credentials, TLS, reconnect forever with bounded backoff.
    pub(crate) async fn connect_options(&self) -> Result<ConnectOptions, BusError> {
        let mut opts = match (&self.creds_file, &self.nkey_file) {
            (Some(creds), _) => {
                ConnectOptions::with_credentials_file(creds)
                    .await
                    .map_err(|e| {
                        BusError::InvalidOption(format!(
                            "cannot read credentials file {}: {e}",
                            creds.display()
                        ))
                    })?
            }
            (None, Some(nkey)) => ConnectOptions::with_nkey(read_secret(nkey, "nkey seed")?),
            (None, None) => ConnectOptions::new(),
        };
        if self.user.is_none() {
            // Credentials written into an address (`nats://user:pass@host`, `nats://token@host`)
            // are honoured like the options: async-nats itself ignores them.
            if let Some((user, password)) = self.url_credentials()? {
                opts = match password {
                    Some(password) => opts.user_and_password(user, password),
                    None => opts.token(user),
                };
            }
        }
        if let Some(user) = &self.user {
            let password = match (&self.password, &self.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(file)) => read_secret(file, "password")?,
                (None, None) => {
                    return Err(BusError::InvalidOption(format!(
                        "user `{user}` given without --nats-password or --nats-password-file"
                    )))
                }
            };
            opts = opts.user_and_password(user.clone(), password);
        }
        if let Some(ca) = &self.tls_ca {
            require_file(ca, "TLS CA certificate")?;
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            require_file(cert, "TLS client certificate")?;
            require_file(key, "TLS client key")?;
            opts = opts
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let (min_delay, max_delay) = (self.min_reconnect_delay, self.max_reconnect_delay);
        Ok(opts
            .name(&self.name)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            // Quick first retries (a restarted local server is back in milliseconds), then a
            // bounded backoff so a long outage costs little.
            .reconnect_delay_callback(move |attempt| {
                let step = Duration::from_millis(50u64.saturating_mul(1 << attempt.min(8)));
                step.min(max_delay).max(min_delay)
            }))
    }
}

fn read_secret(path: &Path, what: &str) -> Result<String, BusError> {
    crate::secret::read_secret_file(path, what).map_err(BusError::InvalidOption)
}

fn require_file(path: &Path, what: &str) -> Result<(), BusError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(BusError::InvalidOption(format!(
            "{what} {} does not exist",
            path.display()
        )))
    }
}
