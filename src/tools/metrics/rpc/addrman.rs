//! `addrman` (`getrawaddrman`) → `peerobserver_rpc_getrawaddrman_*`: per-table breakdowns of
//! the address manager, and counters of how its slots changed since the previous event.

use std::collections::{BTreeMap, HashMap, HashSet};

use prometheus::{IntCounterVec, IntGaugeVec};

use super::count;
use crate::event::proto::rpc_extractor::{Addrman, AddrmanBucket, AddrmanEntry};
use crate::tools::metrics::register::Register;

/// A table's buckets, keyed by bucket number, as the event carries them.
type Table = HashMap<u32, AddrmanBucket>;

/// A slot of a table: (bucket number, position in the bucket).
type Slot = (u32, u32);

/// What the change counters compare of an entry.
#[derive(Debug, PartialEq)]
struct SlotContent {
    address: String,
    port: u32,
    services: u64,
    time: i64,
}

/// How one table changed between two events.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    /// Slots that were empty before (a whole new bucket adds all of its entries).
    added: u64,
    /// Slots that now hold another address or port.
    replaced: u64,
    /// Same address and port, other services.
    changed_services: u64,
    /// Same address and port, other time.
    changed_timestamps: u64,
}

pub(super) struct AddrmanFamilies {
    // Breakdowns of the current tables; reset every event.
    ports: IntGaugeVec,
    service_bits: IntGaugeVec,
    services: IntGaugeVec,
    // Distinct values per table; set for both tables every event.
    distinct_asns: IntGaugeVec,
    distinct_sources: IntGaugeVec,
    distinct_source_asns: IntGaugeVec,
    // Changes since the previous event, per table.
    added_entry: IntCounterVec,
    replaced_entry: IntCounterVec,
    changed_services: IntCounterVec,
    changed_timestamps: IntCounterVec,
    /// The previous event's slots per table (`new`, `tried`); `None` until the first event,
    /// so the change counters start with the second.
    previous: Option<[HashMap<Slot, SlotContent>; 2]>,
}

impl AddrmanFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<AddrmanFamilies> {
        const P: &str = "peerobserver_rpc_getrawaddrman_";
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            r.gauge_int_vec(&format!("{P}{name}"), help, labels)
        };
        let counters =
            |name: &str, help: &str| r.counter_vec(&format!("{P}{name}"), help, &["table"]);
        Ok(AddrmanFamilies {
            ports: gauges("ports", "Entries by port.", &["table", "port"])?,
            service_bits: gauges(
                "service_bits",
                "Entries with a service bit set (bit index + 1).",
                &["table", "service_bit"],
            )?,
            services: gauges(
                "services",
                "Entries by service flags.",
                &["table", "service"],
            )?,
            distinct_asns: gauges("distinct_asns", "Distinct mapped ASes.", &["table"])?,
            distinct_sources: gauges("distinct_sources", "Distinct source addresses.", &["table"])?,
            distinct_source_asns: gauges(
                "distinct_source_asn",
                "Distinct mapped ASes of the sources.",
                &["table"],
            )?,
            added_entry: counters("added_entry", "Entries put into empty slots.")?,
            replaced_entry: counters("replaced_entry", "Slots that got another address or port.")?,
            changed_services: counters("changed_services", "Entries whose services changed.")?,
            changed_timestamps: counters("changed_timestamps", "Entries whose time changed.")?,
            previous: None,
        })
    }

    pub(super) fn observe(&mut self, addrman: &Addrman) {
        let tables = [("new", &addrman.new), ("tried", &addrman.tried)];

        self.ports.reset();
        self.service_bits.reset();
        self.services.reset();
        for (name, table) in tables {
            self.observe_table(name, table);
        }

        let current = tables.map(|(_, table)| slots(table));
        if let Some(previous) = &self.previous {
            for ((name, _), (before, now)) in tables.iter().zip(previous.iter().zip(&current)) {
                // Also when nothing changed: the series then read 0 instead of being absent.
                let changes = compare(before, now);
                let label = [*name];
                self.added_entry
                    .with_label_values(&label)
                    .inc_by(changes.added);
                self.replaced_entry
                    .with_label_values(&label)
                    .inc_by(changes.replaced);
                self.changed_services
                    .with_label_values(&label)
                    .inc_by(changes.changed_services);
                self.changed_timestamps
                    .with_label_values(&label)
                    .inc_by(changes.changed_timestamps);
            }
        }
        self.previous = Some(current);
    }

    fn observe_table(&self, name: &str, table: &Table) {
        let mut ports: BTreeMap<u16, i64> = BTreeMap::new();
        let mut bits: BTreeMap<u32, i64> = BTreeMap::new();
        let mut services: BTreeMap<u64, i64> = BTreeMap::new();
        // An absent AS counts as AS 0: one more distinct value, as upstream counts it.
        let mut asns = HashSet::new();
        let mut sources = HashSet::new();
        let mut source_asns = HashSet::new();
        for entry in entries(table) {
            // Truncated to u16 as upstream does; Core's ports always fit.
            *ports.entry(entry.port as u16).or_default() += 1;
            for bit in (0..u64::BITS).filter(|bit| entry.services & (1 << bit) != 0) {
                // Labelled 1..=64, i.e. bit index + 1.
                *bits.entry(bit + 1).or_default() += 1;
            }
            *services.entry(entry.services).or_default() += 1;
            asns.insert(entry.mapped_as.unwrap_or(0));
            sources.insert(entry.source.as_str());
            source_asns.insert(entry.source_mapped_as.unwrap_or(0));
        }

        for (port, n) in ports {
            self.ports
                .with_label_values(&[name, &port.to_string()])
                .set(n);
        }
        for (bit, n) in bits {
            self.service_bits
                .with_label_values(&[name, &bit.to_string()])
                .set(n);
        }
        for (flags, n) in services {
            self.services
                .with_label_values(&[name, &flags.to_string()])
                .set(n);
        }
        let label = [name];
        self.distinct_asns
            .with_label_values(&label)
            .set(count(asns.len()));
        self.distinct_sources
            .with_label_values(&label)
            .set(count(sources.len()));
        self.distinct_source_asns
            .with_label_values(&label)
            .set(count(source_asns.len()));
    }
}

/// Every entry of a table.
fn entries(table: &Table) -> impl Iterator<Item = &AddrmanEntry> {
    table.values().flat_map(|bucket| bucket.entries.values())
}

/// A table's entries by slot, reduced to what [`compare`] looks at.
fn slots(table: &Table) -> HashMap<Slot, SlotContent> {
    table
        .iter()
        .flat_map(|(&bucket, contents)| {
            contents.entries.iter().map(move |(&position, entry)| {
                let content = SlotContent {
                    address: entry.address.clone(),
                    port: entry.port,
                    services: entry.services,
                    time: entry.time,
                };
                ((bucket, position), content)
            })
        })
        .collect()
}

/// How a table's slots changed from `before` to `now`. Slots that emptied are not counted.
fn compare(before: &HashMap<Slot, SlotContent>, now: &HashMap<Slot, SlotContent>) -> Changes {
    let mut changes = Changes::default();
    for (slot, entry) in now {
        match before.get(slot) {
            None => changes.added += 1,
            Some(old) if old.address != entry.address || old.port != entry.port => {
                changes.replaced += 1;
            }
            Some(old) => {
                // The same address can change both, and then counts in both.
                if old.services != entry.services {
                    changes.changed_services += 1;
                }
                if old.time != entry.time {
                    changes.changed_timestamps += 1;
                }
            }
        }
    }
    changes
}
