//! The table list the analyser gets (`PostgresDetail.table_list`, docs/decisions/0009): whole on
//! the first snapshot of a database on each analyser stream, after a snapshot was dropped, and
//! every `FULL_REFRESH`; otherwise only the tables whose row or indexes changed since the previous
//! snapshot's list, and the names of those that left it. An idle database sends no table at all.
//! The analyser puts the whole list back together (`analyser::tables_view`).
//!
//! The per-table `pg.table.*` figures are left out of what the analyser gets (it reads the typed
//! detail); NATS `metrics` keeps them, built from the whole snapshot before this runs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proto::metrics::{IndexStats, MetricSnapshot, TableList, TableStats};

/// Longest between two whole lists on one stream: bounds how long anything the analyser missed
/// without either side noticing can last.
pub const FULL_REFRESH: Duration = Duration::from_secs(300);

/// What was last sent of one database's table list.
#[derive(Debug, Default)]
pub struct SentTables {
    version: u64,
    previous: Option<Previous>,
}

#[derive(Debug)]
struct Previous {
    stream: u64,
    full_at: Instant,
    tables: HashMap<String, Entry>,
}

type Entry = (TableStats, Vec<IndexStats>);

impl SentTables {
    /// Turns a snapshot carrying the whole list into the one to send on analyser stream number
    /// `stream` (a new stream gets the whole list: the analyser behind it may know nothing).
    pub fn encode(&mut self, snapshot: &mut MetricSnapshot, stream: u64, now: Instant) {
        snapshot
            .extended_metrics
            .retain(|key, _| !key.starts_with("pg.table."));
        let Some(detail) = snapshot.postgres.as_mut() else {
            return;
        };
        self.version += 1;
        let mut current: HashMap<String, Entry> = detail
            .tables
            .iter()
            .map(|t| (t.qualified_name.clone(), (t.clone(), Vec::new())))
            .collect();
        for index in &detail.indexes {
            if let Some(entry) = current.get_mut(&index.qualified_table) {
                entry.1.push(index.clone());
            }
        }
        let base = self
            .previous
            .take()
            .filter(|p| p.stream == stream && now.duration_since(p.full_at) < FULL_REFRESH);
        let full_at = match base {
            Some(base) => {
                let changed: HashSet<&str> = current
                    .iter()
                    .filter(|(name, entry)| base.tables.get(*name) != Some(*entry))
                    .map(|(name, _)| name.as_str())
                    .collect();
                let mut removed: Vec<String> = base
                    .tables
                    .keys()
                    .filter(|name| !current.contains_key(*name))
                    .cloned()
                    .collect();
                removed.sort();
                detail
                    .tables
                    .retain(|t| changed.contains(t.qualified_name.as_str()));
                detail
                    .indexes
                    .retain(|i| changed.contains(i.qualified_table.as_str()));
                detail.table_list = Some(TableList {
                    version: self.version,
                    partial: true,
                    base_version: self.version - 1,
                    removed,
                });
                base.full_at
            }
            None => {
                detail.table_list = Some(TableList {
                    version: self.version,
                    partial: false,
                    base_version: 0,
                    removed: Vec::new(),
                });
                now
            }
        };
        self.previous = Some(Previous {
            stream,
            full_at,
            tables: current,
        });
    }

    /// The last snapshot encoded never left the collector: the next one carries the whole list.
    pub fn lost(&mut self) {
        self.previous = None;
    }
}

#[cfg(test)]
mod tests {
    use proto::metrics::PostgresDetail;

    use super::*;

    fn table(name: &str, seq_scan: i64) -> TableStats {
        TableStats {
            qualified_name: format!("public.{name}"),
            schema: "public".into(),
            name: name.into(),
            seq_scan,
            ..Default::default()
        }
    }

    fn index(table: &str, name: &str) -> IndexStats {
        IndexStats {
            qualified_table: format!("public.{table}"),
            name: name.into(),
            ..Default::default()
        }
    }

    fn snapshot(tables: Vec<TableStats>, indexes: Vec<IndexStats>) -> MetricSnapshot {
        let mut extended = HashMap::new();
        extended.insert("pg.table.public.a.seq_scans".to_owned(), 1.0);
        extended.insert("pg.connections_total".to_owned(), 3.0);
        MetricSnapshot {
            extended_metrics: extended,
            postgres: Some(PostgresDetail {
                tables,
                indexes,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn list(s: &MetricSnapshot) -> (TableList, Vec<String>, Vec<String>) {
        let detail = s.postgres.as_ref().unwrap();
        (
            detail.table_list.clone().unwrap(),
            detail
                .tables
                .iter()
                .map(|t| t.qualified_name.clone())
                .collect(),
            detail.indexes.iter().map(|i| i.name.clone()).collect(),
        )
    }

    #[test]
    fn only_changed_tables_follow_the_first_whole_list() {
        let mut sent = SentTables::default();
        let t0 = Instant::now();
        let mut first = snapshot(
            vec![table("a", 1), table("b", 0), table("c", 0)],
            vec![index("a", "a_pkey"), index("b", "b_pkey")],
        );
        sent.encode(&mut first, 1, t0);
        let (whole, tables, indexes) = list(&first);
        assert!(!whole.partial);
        assert_eq!((tables.len(), indexes.len()), (3, 2));
        assert!(
            !first
                .extended_metrics
                .contains_key("pg.table.public.a.seq_scans")
        );
        assert!(first.extended_metrics.contains_key("pg.connections_total"));

        // a's window went quiet, b gained an index, c was dropped, d is new.
        let mut second = snapshot(
            vec![table("a", 0), table("b", 0), table("d", 0)],
            vec![
                index("a", "a_pkey"),
                index("b", "b_pkey"),
                index("b", "b_v"),
            ],
        );
        sent.encode(&mut second, 1, t0 + Duration::from_secs(10));
        let (partial, tables, indexes) = list(&second);
        assert!(partial.partial);
        assert_eq!(partial.base_version, whole.version);
        assert_eq!(partial.version, whole.version + 1);
        assert_eq!(partial.removed, vec!["public.c"]);
        assert_eq!(tables, vec!["public.a", "public.b", "public.d"]);
        assert_eq!(indexes, vec!["a_pkey", "b_pkey", "b_v"]);

        let mut idle = snapshot(
            vec![table("a", 0), table("b", 0), table("d", 0)],
            vec![
                index("a", "a_pkey"),
                index("b", "b_pkey"),
                index("b", "b_v"),
            ],
        );
        sent.encode(&mut idle, 1, t0 + Duration::from_secs(20));
        let (partial, tables, indexes) = list(&idle);
        assert!(partial.partial && partial.removed.is_empty());
        assert!(tables.is_empty() && indexes.is_empty());
    }

    #[test]
    fn a_new_stream_a_lost_snapshot_and_the_refresh_period_each_send_the_whole_list() {
        let mut sent = SentTables::default();
        let t0 = Instant::now();
        let whole = |sent: &mut SentTables, stream, at| {
            let mut s = snapshot(vec![table("a", 0)], vec![]);
            sent.encode(&mut s, stream, at);
            !list(&s).0.partial
        };
        assert!(whole(&mut sent, 1, t0));
        assert!(!whole(&mut sent, 1, t0 + Duration::from_secs(1)));
        assert!(
            whole(&mut sent, 2, t0 + Duration::from_secs(2)),
            "new stream"
        );
        sent.lost();
        assert!(whole(&mut sent, 2, t0 + Duration::from_secs(3)), "lost");
        assert!(!whole(&mut sent, 2, t0 + Duration::from_secs(4)));
        assert!(
            whole(&mut sent, 2, t0 + Duration::from_secs(3) + FULL_REFRESH),
            "refresh"
        );
    }
}
