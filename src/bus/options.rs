//! NATS connection options, as a deployment needs them, and their command-line form.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};

use super::BusError;

/// Command-line options for reaching NATS; flatten into any subcommand that talks to the bus.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server address; repeat for a cluster (tried in order, reconnects to any).
    #[arg(
        short = 'a',
        long = "nats-address",
        value_name = "URL",
        env = "PEERLAB_NATS_ADDRESS",
        default_value = "nats://127.0.0.1:4222",
        value_delimiter = ','
    )]
    pub addresses: Vec<String>,
    #[command(flatten)]
    pub connect: NatsConnectArgs,
}

/// How to authenticate and secure a NATS connection, and how long to wait for it: every
/// command that talks to NATS takes these, whichever way it names its servers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsConnectArgs {
    /// User name for user/password authentication.
    #[arg(long = "nats-user", value_name = "USER", requires = "password_source")]
    pub user: Option<String>,
    /// Password for user/password authentication (prefer --nats-password-file).
    #[arg(
        long = "nats-password",
        value_name = "PASSWORD",
        group = "password_source"
    )]
    pub password: Option<String>,
    /// File whose first line is the password.
    #[arg(
        long = "nats-password-file",
        value_name = "FILE",
        group = "password_source"
    )]
    pub password_file: Option<PathBuf>,
    /// NATS credentials file (`.creds`: user JWT and nkey seed).
    #[arg(long = "nats-creds", value_name = "FILE", conflicts_with_all = ["user", "nkey_file"])]
    pub creds_file: Option<PathBuf>,
    /// File holding an nkey seed (`SU...`) for nkey authentication.
    #[arg(long = "nats-nkey", value_name = "FILE", conflicts_with = "user")]
    pub nkey_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the server; enables TLS.
    #[arg(long = "nats-tls-ca", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --nats-tls-key.
    #[arg(long = "nats-tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; needs --nats-tls-cert.
    #[arg(long = "nats-tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Give up if no server answers within this many seconds at start-up (0 = keep trying;
    /// at most one year).
    #[arg(
        long = "nats-wait",
        value_name = "SECONDS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=365 * 24 * 3600)
    )]
    pub wait_secs: u64,
}

impl NatsArgs {
    /// Converts the command line into connection options.
    pub fn to_options(&self) -> NatsOptions {
        self.connect.to_options(self.addresses.clone())
    }
}

impl NatsConnectArgs {
    /// Connection options for `addresses` with these credentials, TLS and wait.
    pub fn to_options(&self, addresses: Vec<String>) -> NatsOptions {
        NatsOptions {
            addresses,
            user: self.user.clone(),
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            creds_file: self.creds_file.clone(),
            nkey_file: self.nkey_file.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            wait: (self.wait_secs > 0).then(|| Duration::from_secs(self.wait_secs)),
            ..NatsOptions::default()
        }
    }
}

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
    /// out (async-nats logs the addresses it dials; see [`Self::url_credentials`]).
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        BusError::InvalidOption(format!("cannot read {what} file {}: {e}", path.display()))
    })?;
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if first.is_empty() {
        return Err(BusError::InvalidOption(format!(
            "{what} file {} is empty",
            path.display()
        )));
    }
    Ok(first)
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
