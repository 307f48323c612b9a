//! Subject naming: peer-observer's flat subjects, or `<prefix>.<node>.<subject>` for fleets.

use crate::event::EventKind;

/// The tokens that mark a subject as peerlab's counters rather than events.
pub const STATS_TOKENS: &str = "peerlab.stats";

/// The tokens of the subject the alerts tool publishes its alerts on (peerlab's own; not
/// part of peer-observer's wire format, which has no alerts on the bus).
pub const ALERTS_TOKENS: &str = "peerlab.alerts";

/// Whether `subject` carries alerts, in any scheme.
pub fn is_alerts_subject(subject: &str) -> bool {
    subject == ALERTS_TOKENS || subject.ends_with(".peerlab.alerts")
}

/// Whether `subject` carries counter snapshots, in any scheme.
pub fn is_stats_subject(subject: &str) -> bool {
    subject.starts_with("peerlab.stats.") || subject.contains(".peerlab.stats.")
}

/// How event kinds map to NATS subjects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SubjectScheme {
    /// `netmsg`, `netconn`, ...: what peer-observer's tools subscribe to (`*`).
    #[default]
    Flat,
    /// `<prefix>.<node>.<subject>`; `node` may be `*` when subscribing to a whole fleet.
    Prefixed {
        /// First token(s), e.g. `peerlab`.
        prefix: String,
        /// Node name token.
        node: String,
    },
}

impl SubjectScheme {
    /// The subject an event of `kind` is published on.
    pub fn subject(&self, kind: EventKind) -> String {
        match self {
            SubjectScheme::Flat => kind.subject().to_string(),
            SubjectScheme::Prefixed { prefix, node } => {
                format!("{prefix}.{node}.{}", kind.subject())
            }
        }
    }

    /// The wildcard pattern matching every event subject of this scheme.
    pub fn wildcard(&self) -> String {
        match self {
            SubjectScheme::Flat => "*".to_string(),
            SubjectScheme::Prefixed { prefix, node } => format!("{prefix}.{node}.*"),
        }
    }

    /// Splits a received subject into (node, kind); `None` for subjects outside the scheme.
    pub fn parse(&self, subject: &str) -> Option<(Option<String>, EventKind)> {
        match self {
            SubjectScheme::Flat => subject.parse().ok().map(|k| (None, k)),
            SubjectScheme::Prefixed { prefix, .. } => {
                let rest = subject.strip_prefix(prefix.as_str())?.strip_prefix('.')?;
                let (node, kind) = rest.split_once('.')?;
                Some((Some(node.to_string()), kind.parse().ok()?))
            }
        }
    }

    /// The subject a component's counter snapshots are published on:
    /// `peerlab.stats.<component>` with flat subjects (three tokens, so peer-observer's tools
    /// on `*` never see it), `<prefix>.<node>.peerlab.stats.<component>` in a fleet (inside the
    /// prefix, so a collector capturing `<prefix>.>` keeps them; below the event subjects'
    /// `<prefix>.<node>.*`).
    pub fn stats_subject(&self, component: &str) -> String {
        match self {
            SubjectScheme::Flat => format!("{STATS_TOKENS}.{component}"),
            SubjectScheme::Prefixed { prefix, node } => {
                format!("{prefix}.{node}.{STATS_TOKENS}.{component}")
            }
        }
    }

    /// The subject alerts are published on (`peerlab.alerts`, or
    /// `<prefix>.<node>.peerlab.alerts`).
    pub fn alerts_subject(&self) -> String {
        match self {
            SubjectScheme::Flat => ALERTS_TOKENS.to_string(),
            SubjectScheme::Prefixed { prefix, node } => format!("{prefix}.{node}.{ALERTS_TOKENS}"),
        }
    }

    /// The subject a component that reads this scheme publishes its own counters on: its
    /// [`stats_subject`](Self::stats_subject), except when the node is a wildcard (a reader of
    /// a whole fleet, e.g. `--node '*'`), where no message can be published; such a component
    /// belongs to no node and uses the flat `peerlab.stats.<component>`.
    pub fn own_stats_subject(&self, component: &str) -> String {
        match self {
            SubjectScheme::Prefixed { node, .. } if node == "*" || node == ">" => {
                SubjectScheme::Flat.stats_subject(component)
            }
            _ => self.stats_subject(component),
        }
    }

    /// The pattern matching every counter subject of this scheme (every node's with `*`).
    pub fn stats_wildcard(&self) -> String {
        self.stats_subject(">")
    }

    /// Splits a counter subject into (node, component); `None` for other subjects.
    pub fn parse_stats(&self, subject: &str) -> Option<(Option<String>, String)> {
        match self {
            SubjectScheme::Flat => subject
                .strip_prefix(STATS_TOKENS)?
                .strip_prefix('.')
                .map(|component| (None, component.to_string())),
            SubjectScheme::Prefixed { prefix, .. } => {
                let rest = subject.strip_prefix(prefix.as_str())?.strip_prefix('.')?;
                let (node, rest) = rest.split_once('.')?;
                let component = rest.strip_prefix(STATS_TOKENS)?.strip_prefix('.')?;
                Some((Some(node.to_string()), component.to_string()))
            }
        }
    }

    /// A short description for logs and recording metadata.
    pub fn describe(&self) -> String {
        match self {
            SubjectScheme::Flat => "flat".to_string(),
            SubjectScheme::Prefixed { prefix, node } => format!("{prefix}.{node}.<subject>"),
        }
    }
}

/// This machine's host name (dots replaced by dashes, a subject token must not contain one),
/// the default node name in prefixed subjects.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace('.', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_subjects_are_peer_observers() {
        let s = SubjectScheme::Flat;
        assert_eq!(s.subject(EventKind::NetMsg), "netmsg");
        assert_eq!(s.subject(EventKind::P2pExtractor), "p2p-extractor");
        assert_eq!(s.wildcard(), "*");
        assert_eq!(
            s.parse("log-extractor"),
            Some((None, EventKind::LogExtractor))
        );
        assert_eq!(s.parse("peerlab.stats"), None);
    }

    #[test]
    fn prefixed_subjects_carry_the_node() {
        let s = SubjectScheme::Prefixed {
            prefix: "fleet".into(),
            node: "n1".into(),
        };
        assert_eq!(s.subject(EventKind::Mempool), "fleet.n1.mempool");
        assert_eq!(s.wildcard(), "fleet.n1.*");
        assert_eq!(
            s.parse("fleet.n2.validation"),
            Some((Some("n2".into()), EventKind::Validation))
        );
        assert_eq!(s.parse("other.n2.validation"), None);
        assert_eq!(s.parse("fleet.n2.bogus"), None);
    }

    #[test]
    fn counter_subjects_follow_the_scheme() {
        let flat = SubjectScheme::Flat;
        assert_eq!(
            flat.stats_subject("ebpf-extractor"),
            "peerlab.stats.ebpf-extractor"
        );
        assert_eq!(flat.stats_wildcard(), "peerlab.stats.>");
        assert_eq!(
            flat.parse_stats("peerlab.stats.ebpf-extractor"),
            Some((None, "ebpf-extractor".into()))
        );
        let fleet = SubjectScheme::Prefixed {
            prefix: "fleet".into(),
            node: "n1".into(),
        };
        let subject = fleet.stats_subject("ebpf-extractor");
        assert_eq!(subject, "fleet.n1.peerlab.stats.ebpf-extractor");
        assert!(is_stats_subject(&subject) && is_stats_subject("peerlab.stats.x"));
        assert!(!is_stats_subject("fleet.n1.netmsg"));
        // Event subscribers (`fleet.n1.*`) never receive counters.
        assert_eq!(fleet.parse(&subject), None);
        assert_eq!(
            fleet.parse_stats(&subject),
            Some((Some("n1".into()), "ebpf-extractor".into()))
        );
        let everyone = SubjectScheme::Prefixed {
            prefix: "fleet".into(),
            node: "*".into(),
        };
        assert_eq!(everyone.stats_wildcard(), "fleet.*.peerlab.stats.>");
        // A reader of every node publishes its own counters where a message can go.
        assert_eq!(
            everyone.own_stats_subject("recorder"),
            "peerlab.stats.recorder"
        );
        assert_eq!(
            fleet.own_stats_subject("recorder"),
            "fleet.n1.peerlab.stats.recorder"
        );
    }
}
