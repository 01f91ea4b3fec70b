//! The collector's partial table lists and the analyser's view of them (docs/decisions/0009),
//! together on a real PostgreSQL cluster: after every cycle, what the analyser puts back together
//! from what it was sent equals the whole list the collector read.

use std::time::{Duration, Instant};

use analyser::tables_view::TablesView;
use collector::cycle::Database;
use proto::metrics::{IndexStats, MetricSnapshot, TableStats};
use sqlx::postgres::PgPoolOptions;
use testkit::PgCluster;

fn whole(s: &MetricSnapshot) -> (Vec<TableStats>, Vec<IndexStats>) {
    let detail = s.postgres.as_ref().unwrap();
    (detail.tables.clone(), detail.indexes.clone())
}

fn names(tables: &[TableStats]) -> Vec<&str> {
    tables.iter().map(|t| t.qualified_name.as_str()).collect()
}

#[tokio::test]
async fn the_analysers_view_equals_the_whole_list_through_ddl_writes_scans_and_drops() {
    let pg = PgCluster::start();
    pg.create_database("app");
    // More tables than the collector reports when nothing happens to them (100 per kind): tables
    // enter and leave the list as their windows change, as well as by DDL.
    pg.psql(
        "app",
        "DO $$ BEGIN FOR i IN 1..150 LOOP \
           EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v int) \
                           WITH (autovacuum_enabled = false)', i); \
           EXECUTE format('INSERT INTO t%s SELECT g, g FROM generate_series(1, 20) g', i); \
           IF i % 10 = 0 THEN EXECUTE format('DELETE FROM t%s WHERE id <= 5', i); END IF; \
         END LOOP; END $$",
    );
    let options = collector::orchestrator::connect_options(&pg.url("app")).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();

    let steps: &[(&str, &str)] = &[
        ("nothing", ""),
        ("an index appears", "CREATE INDEX t10_v ON t10 (v)"),
        (
            "a table grows",
            "INSERT INTO t20 SELECT g, g FROM generate_series(100, 20100) g",
        ),
        ("a table is scanned", "SELECT count(*) FROM t7 WHERE v = 3"),
        ("nothing", ""),
        ("a table is dropped", "DROP TABLE t30"),
        (
            "a new table with dead rows",
            "CREATE TABLE fresh (id int PRIMARY KEY) WITH (autovacuum_enabled = false); \
             INSERT INTO fresh SELECT generate_series(1, 50); DELETE FROM fresh WHERE id < 20",
        ),
        ("an index is dropped", "DROP INDEX t10_v"),
        ("nothing", ""),
        ("nothing", ""),
    ];
    let view = TablesView::default();
    let mut database = Database::default();
    let mut partial_cycles = 0;
    let mut smallest_partial = usize::MAX;
    let mut t20_size = None;
    let mut seen_t10_v = false;
    for (what, sql) in steps {
        if !sql.is_empty() {
            pg.psql("app", sql);
        }
        // Two cycles per step: statistics reach shared memory up to a second after a change, so
        // the second one sees it too; each must reconstruct exactly.
        for _ in 0..2 {
            let started = Instant::now();
            let (sample, full) = database
                .collect("db1", &pool, true, 0, started)
                .await
                .unwrap();
            assert!(sample.errors.is_empty(), "{what}: {:?}", sample.errors);
            let mut sent = full.clone();
            database.sent.encode(&mut sent, 1, started);
            let list = sent.postgres.as_ref().unwrap().table_list.clone().unwrap();
            if list.partial {
                partial_cycles += 1;
                smallest_partial =
                    smallest_partial.min(sent.postgres.as_ref().unwrap().tables.len());
            }
            view.apply(&mut sent);
            let (tables, indexes) = whole(&sent);
            let (full_tables, full_indexes) = whole(&full);
            assert_eq!(
                names(&tables),
                names(&full_tables),
                "{what}: the view's tables"
            );
            assert_eq!(tables, full_tables, "{what}: the view's figures");
            assert_eq!(indexes, full_indexes, "{what}: the view's indexes");
            if *what == "an index appears" {
                seen_t10_v |= indexes.iter().any(|i| i.name == "t10_v");
            }
            if let Some(t20) = tables.iter().find(|t| t.name == "t20") {
                t20_size = Some(t20.table_bytes);
            }
            if *what == "a table is dropped" {
                assert!(!names(&tables).contains(&"public.t30"), "t30 left the view");
            }
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        if *what == "a new table with dead rows" {
            assert!(
                view_has(&view, &mut database, &pool, "public.fresh").await,
                "a new table with dead rows is reported"
            );
        }
    }
    assert!(seen_t10_v, "a new index is in the next snapshot's view");
    assert!(
        t20_size.is_some_and(|bytes| bytes > 200_000),
        "a table that grew has its new size: {t20_size:?}"
    );
    assert!(
        partial_cycles >= 15,
        "all but the first are partial: {partial_cycles}"
    );
    assert_eq!(smallest_partial, 0, "an idle cycle sends no table");
}

/// Whether the next cycle's view lists `table`.
async fn view_has(
    view: &TablesView,
    database: &mut Database,
    pool: &sqlx::PgPool,
    table: &str,
) -> bool {
    let started = Instant::now();
    let (_, mut sent) = database
        .collect("db1", pool, true, 0, started)
        .await
        .unwrap();
    database.sent.encode(&mut sent, 1, started);
    view.apply(&mut sent);
    names(&whole(&sent).0).contains(&table)
}
