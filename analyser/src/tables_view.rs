//! Each database's whole table list, put back together from snapshots that carry only what
//! changed (`PostgresDetail.table_list`, docs/decisions/0009), before anything reads a snapshot:
//! detectors, the advisor and verification always see `tables` and `indexes` whole, ordered by
//! name, and `table_list` says `partial: false`.
//!
//! A whole list replaces what was known. A partial one applies to the list numbered its
//! `base_version`: its tables replace theirs (with all their indexes), `removed` ones go, the rest
//! stay as they were. If the list known is not that one (a snapshot was lost, the analyser
//! restarted), only the tables in the partial snapshot are kept: every table shown then has its
//! true figures (a table that changes is always sent), and the others are missing until the next
//! whole list (`FULL_REFRESH` in the collector) — a missed detection for a while rather than one
//! raised from figures of a window long past.
//!
//! Each table is kept encoded (its `TableStats` and its indexes, protobuf, about a quarter of the
//! size of the decoded structures): a thousand databases' lists are most of what the analyser
//! keeps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use prost::Message;
use proto::metrics::{IndexStats, MetricSnapshot, TableStats};
use tracing::info;

/// The table lists of every database seen, by database id.
#[derive(Debug, Default)]
pub struct TablesView {
    databases: Mutex<HashMap<String, Known>>,
}

#[derive(Debug)]
struct Known {
    version: u64,
    /// By qualified name: the table, then its indexes by name (`encode`).
    tables: BTreeMap<String, Box<[u8]>>,
}

/// A table and its indexes, each length-delimited, the indexes ordered by name.
fn encode(table: &TableStats, mut indexes: Vec<IndexStats>) -> Box<[u8]> {
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bytes = Vec::with_capacity(
        table.encoded_len() + indexes.iter().map(|i| i.encoded_len() + 2).sum::<usize>() + 2,
    );
    // Writing to a Vec cannot fail.
    let _ = table.encode_length_delimited(&mut bytes);
    for index in &indexes {
        let _ = index.encode_length_delimited(&mut bytes);
    }
    bytes.into_boxed_slice()
}

/// What `encode` wrote; `None` if it does not decode (it always does: this process wrote it).
fn decode(mut bytes: &[u8]) -> Option<(TableStats, Vec<IndexStats>)> {
    let table = TableStats::decode_length_delimited(&mut bytes).ok()?;
    let mut indexes = Vec::new();
    while !bytes.is_empty() {
        indexes.push(IndexStats::decode_length_delimited(&mut bytes).ok()?);
    }
    Some((table, indexes))
}

impl TablesView {
    /// Makes the snapshot's table list whole.
    pub fn apply(&self, snapshot: &mut MetricSnapshot) {
        let Some(detail) = snapshot.postgres.as_mut() else {
            return;
        };
        let mut received: BTreeMap<String, (TableStats, Vec<IndexStats>)> = detail
            .tables
            .drain(..)
            .map(|t| (t.qualified_name.clone(), (t, Vec::new())))
            .collect();
        for index in detail.indexes.drain(..) {
            if let Some(entry) = received.get_mut(&index.qualified_table) {
                entry.1.push(index);
            }
        }
        let tables = received
            .into_iter()
            .map(|(name, (table, indexes))| (name, encode(&table, indexes)));
        let mut databases = self
            .databases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = match detail.table_list.as_mut() {
            Some(list) if list.partial => {
                let known = databases
                    .entry(snapshot.database_id.clone())
                    .or_insert_with(|| Known {
                        version: 0,
                        tables: BTreeMap::new(),
                    });
                if known.version != list.base_version {
                    info!(
                        database_id = %snapshot.database_id,
                        known = known.version,
                        base = list.base_version,
                        "table list out of step; tables unchanged since are missing until the next whole list"
                    );
                    known.tables.clear();
                }
                for name in &list.removed {
                    known.tables.remove(name);
                }
                known.tables.extend(tables);
                known.version = list.version;
                list.partial = false;
                list.base_version = 0;
                list.removed.clear();
                known
            }
            list => {
                let version = list.map_or(0, |l| l.version);
                databases.insert(
                    snapshot.database_id.clone(),
                    Known {
                        version,
                        tables: tables.collect(),
                    },
                );
                databases
                    .get_mut(&snapshot.database_id)
                    .expect("inserted just above")
            }
        };
        for (table, indexes) in known.tables.values().filter_map(|bytes| decode(bytes)) {
            detail.tables.push(table);
            detail.indexes.extend(indexes);
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::metrics::{PostgresDetail, TableList};

    use super::*;

    fn table(name: &str, dead: i64) -> TableStats {
        TableStats {
            qualified_name: format!("public.{name}"),
            schema: "public".into(),
            name: name.into(),
            dead_tuples: dead,
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

    fn snapshot(
        db: &str,
        tables: Vec<TableStats>,
        indexes: Vec<IndexStats>,
        list: Option<TableList>,
    ) -> MetricSnapshot {
        MetricSnapshot {
            database_id: db.into(),
            postgres: Some(PostgresDetail {
                tables,
                indexes,
                table_list: list,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn partial(version: u64, removed: &[&str]) -> Option<TableList> {
        Some(TableList {
            version,
            partial: true,
            base_version: version - 1,
            removed: removed.iter().map(|r| format!("public.{r}")).collect(),
        })
    }

    fn whole(version: u64) -> Option<TableList> {
        Some(TableList {
            version,
            ..Default::default()
        })
    }

    fn names(s: &MetricSnapshot) -> (Vec<String>, Vec<String>) {
        let detail = s.postgres.as_ref().unwrap();
        (
            detail
                .tables
                .iter()
                .map(|t| format!("{}:{}", t.name, t.dead_tuples))
                .collect(),
            detail.indexes.iter().map(|i| i.name.clone()).collect(),
        )
    }

    #[test]
    fn partial_lists_are_applied_to_the_last_whole_one_per_database() {
        let view = TablesView::default();
        let mut first = snapshot(
            "db1",
            vec![table("b", 1), table("a", 0), table("c", 0)],
            vec![index("b", "b_pkey"), index("a", "a_pkey")],
            whole(1),
        );
        view.apply(&mut first);
        assert_eq!(
            names(&first),
            (
                vec!["a:0".into(), "b:1".into(), "c:0".into()],
                vec!["a_pkey".into(), "b_pkey".into()]
            )
        );
        // Another database's lists are its own.
        let mut other = snapshot("db2", vec![table("z", 0)], vec![], whole(7));
        view.apply(&mut other);

        // b changed and gained an index, c was dropped, d is new; a stays as it was.
        let mut second = snapshot(
            "db1",
            vec![table("b", 5), table("d", 0)],
            vec![index("b", "b_v"), index("b", "b_pkey")],
            partial(2, &["c"]),
        );
        view.apply(&mut second);
        assert_eq!(
            names(&second),
            (
                vec!["a:0".into(), "b:5".into(), "d:0".into()],
                vec!["a_pkey".into(), "b_pkey".into(), "b_v".into()]
            )
        );
        let list = second
            .postgres
            .as_ref()
            .unwrap()
            .table_list
            .clone()
            .unwrap();
        assert!(!list.partial && list.removed.is_empty());

        let mut idle = snapshot("db1", vec![], vec![], partial(3, &[]));
        view.apply(&mut idle);
        assert_eq!(names(&idle), names(&second));
    }

    #[test]
    fn a_gap_keeps_only_the_tables_the_partial_list_carries() {
        let view = TablesView::default();
        let mut first = snapshot("db1", vec![table("a", 9), table("b", 0)], vec![], whole(1));
        view.apply(&mut first);
        // Version 2 never arrived: a's 9 may be long gone.
        let mut fourth = snapshot("db1", vec![table("b", 3)], vec![], partial(3, &[]));
        view.apply(&mut fourth);
        assert_eq!(names(&fourth).0, vec!["b:3".to_owned()]);
        // From there on, partial lists apply again.
        let mut fifth = snapshot("db1", vec![table("c", 0)], vec![], partial(4, &[]));
        view.apply(&mut fifth);
        assert_eq!(names(&fifth).0, vec!["b:3".to_owned(), "c:0".to_owned()]);
    }

    #[test]
    fn a_snapshot_without_a_table_list_is_whole() {
        let view = TablesView::default();
        let mut old = snapshot("db1", vec![table("b", 0), table("a", 0)], vec![], None);
        view.apply(&mut old);
        assert_eq!(
            names(&old).0,
            vec!["a:0".to_owned(), "b:0".to_owned()],
            "ordered by name"
        );
    }
}
