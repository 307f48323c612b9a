//! The options every command that talks to NATS takes, and the subject scheme options.

use std::path::PathBuf;
use std::time::Duration;

use peerlab::bus::{NatsOptions, SubjectScheme};

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

/// Command-line options choosing the subject scheme.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SubjectSchemeArgs {
    /// Prefix subjects as `<prefix>.<node>.<subject>` (for fleets); default: flat
    /// peer-observer subjects (`netmsg`, `mempool`, ...).
    #[arg(long = "subject-prefix", value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// This node's name in prefixed subjects (default: the host name). For subscribers,
    /// `*` means every node.
    #[arg(long = "node", value_name = "NAME", requires = "prefix")]
    pub node: Option<String>,
}

impl SubjectSchemeArgs {
    /// The scheme these options describe.
    pub fn scheme(&self) -> SubjectScheme {
        match &self.prefix {
            None => SubjectScheme::Flat,
            Some(prefix) => SubjectScheme::Prefixed {
                prefix: prefix.clone(),
                node: self
                    .node
                    .clone()
                    .unwrap_or_else(peerlab::bus::default_node_name),
            },
        }
    }
}
