//! `create_index`: `CREATE INDEX CONCURRENTLY` (key columns, optionally `INCLUDE` columns for an
//! index-only scan, and for a partial index `WHERE "column" = constant` written from a typed
//! constant, never from SQL text) with quoted, schema-qualified identifiers on a
//! connection of its own (the action's time limit as `statement_timeout`, a 2 s `lock_timeout`,
//! retried up to three times when a lock is busy). An INVALID index left by a failed or
//! interrupted build is dropped; an index of that name that was there before is never touched.
//! Rollback drops the index only if it is still the one we built (same OID), concurrently.

use std::time::{Duration, Instant};

use proto::sql::{
    IndexPredicate, include_clause, index_key, qualified, quote_ident, valid_identifier,
    where_clause,
};
use std::future::Future;

use proto::actions::{CreateIndex, IndexBuilt, IndexDropped, KeyColumn};
use serde_json::Value;
use sqlx::PgConnection;

use super::{Context, identifier, shown};
use crate::databases::execute_or_stop;
use crate::databases::{marked, marked_sql};
use crate::error::ActionError;
use crate::error::{describe, is_lock_timeout};

const ATTEMPTS: u32 = 3;
const MAX_COLUMNS: usize = 32;

/// `create_index` as the executor runs it.
pub trait CreateIndexRun: Sized {
    fn from_metadata(metadata: &Value) -> Result<Self, ActionError>;
    fn statement(&self) -> String;
    fn execute(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<IndexBuilt, ActionError>> + Send;
    fn rollback(
        &self,
        context: &Context,
        result: &IndexBuilt,
    ) -> impl Future<Output = Result<IndexDropped, ActionError>> + Send;
    fn recover(
        &self,
        context: &Context,
    ) -> impl Future<Output = Result<Option<IndexBuilt>, ActionError>> + Send;
}

impl CreateIndexRun for CreateIndex {
    /// From the analyser's metadata (schema, table_name, index_name, columns), or the original's
    /// (table_name, column_name: schema `public`, name `idx_<table>_<column>`).
    fn from_metadata(metadata: &Value) -> Result<Self, ActionError> {
        let table = identifier(metadata, "table_name")?;
        let schema = match metadata.get("schema") {
            None | Some(Value::Null) => "public".to_owned(),
            Some(_) => identifier(metadata, "schema")?,
        };
        let columns: Vec<KeyColumn> = match metadata.get("columns") {
            Some(Value::Array(list)) => list
                .iter()
                .map(|c| {
                    serde_json::from_value::<KeyColumn>(c.clone())
                        .map_err(|e| ActionError::Invalid(shown(format!("columns: {e}"))))
                })
                .collect::<Result<_, _>>()?,
            None | Some(Value::Null) => vec![KeyColumn {
                name: identifier(metadata, "column_name")?,
                descending: false,
                function: None,
            }],
            Some(other) => {
                return Err(ActionError::Invalid(format!(
                    "columns must be a list, not {}",
                    shown(other.to_string())
                )));
            }
        };
        if columns.is_empty() || columns.len() > MAX_COLUMNS {
            return Err(ActionError::Invalid(format!(
                "an index needs 1 to {MAX_COLUMNS} columns"
            )));
        }
        let include: Vec<String> = match metadata.get("include") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|c| match c {
                    Value::String(name) => Ok(name.clone()),
                    other => Err(ActionError::Invalid(format!(
                        "include must list column names, not {}",
                        shown(other.to_string())
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(ActionError::Invalid(format!(
                    "include must be a list, not {}",
                    shown(other.to_string())
                )));
            }
        };
        if columns.len() + include.len() > MAX_COLUMNS {
            return Err(ActionError::Invalid(format!(
                "an index has at most {MAX_COLUMNS} key and included columns"
            )));
        }
        let names = columns.iter().map(|c| &c.name).chain(&include);
        if let Some(bad) = names.clone().find(|name| !valid_identifier(name)) {
            return Err(ActionError::Invalid(format!(
                "column {} is not a valid identifier",
                shown(format!("{bad:?}"))
            )));
        }
        // A column may be included beside a function of it (`lower(email)` INCLUDE `email`).
        if let Some(twice) = include.iter().find(|name| {
            columns
                .iter()
                .any(|c| &c.name == *name && c.function.is_none())
        }) {
            return Err(ActionError::Invalid(format!(
                "column {} is both a key and an included column",
                shown(format!("{twice:?}"))
            )));
        }
        let predicate: Option<IndexPredicate> = match metadata.get("predicate") {
            None | Some(Value::Null) => None,
            Some(value) => {
                let predicate: IndexPredicate = serde_json::from_value(value.clone())
                    .map_err(|e| ActionError::Invalid(shown(format!("predicate: {e}"))))?;
                if !valid_identifier(&predicate.column) {
                    return Err(ActionError::Invalid(format!(
                        "predicate column {} is not a valid identifier",
                        shown(format!("{:?}", predicate.column))
                    )));
                }
                if !predicate.value.is_valid() {
                    return Err(ActionError::Invalid(format!(
                        "predicate constant {} cannot be written safely",
                        shown(format!("{:?}", predicate.value))
                    )));
                }
                Some(predicate)
            }
        };
        let index_name = match metadata.get("index_name") {
            None | Some(Value::Null) => format!("idx_{table}_{}", columns[0].name),
            Some(_) => identifier(metadata, "index_name")?,
        };
        if !valid_identifier(&index_name) {
            return Err(ActionError::Invalid(format!(
                "index name {index_name:?} is longer than 63 bytes"
            )));
        }
        Ok(Self {
            schema,
            table,
            index_name,
            columns,
            include,
            predicate,
        })
    }

    /// The exact statement run.
    fn statement(&self) -> String {
        let keys: Vec<String> = self
            .columns
            .iter()
            .map(|k| index_key(&k.name, k.function, k.descending))
            .collect();
        format!(
            "CREATE INDEX CONCURRENTLY {} ON {} ({}){}{}",
            quote_ident(&self.index_name),
            qualified(&self.schema, &self.table),
            keys.join(", "),
            include_clause(&self.include),
            where_clause(self.predicate.as_ref())
        )
    }

    async fn execute(&self, context: &Context) -> Result<IndexBuilt, ActionError> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        if !table_exists(&mut conn, &self.schema, &self.table).await? {
            return Err(ActionError::Refused(format!(
                "table {} does not exist",
                qualified(&self.schema, &self.table)
            )));
        }
        if let Some((_, valid)) = index(&mut conn, &self.schema, &self.index_name).await? {
            return Err(ActionError::Refused(format!(
                "an index named {} already exists{}; it is not ours and is left alone",
                qualified(&self.schema, &self.index_name),
                if valid { "" } else { " (INVALID)" }
            )));
        }
        let statement = self.statement();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let run = execute_or_stop(database, &mut conn, &statement, &context.stop).await?;
            if run.stopped {
                // Stopped at shutdown: whatever is there now is ours (the name was free).
                let cleaned = drop_if_invalid(self, &mut conn).await?;
                if run.outcome.is_ok()
                    && let Some((_, true)) =
                        index(&mut conn, &self.schema, &self.index_name).await?
                {
                    // It finished as it was being cancelled: a complete build, kept.
                } else {
                    return Err(ActionError::Cancelled(format!(
                        "the index build was cancelled{}",
                        if cleaned {
                            " and the INVALID index it left was dropped"
                        } else {
                            "; it left no index behind"
                        }
                    )));
                }
            }
            match run.outcome {
                Ok(()) => break,
                Err(error) => {
                    // It did not exist before this attempt, so whatever is there now is ours.
                    let cleaned = drop_if_invalid(self, &mut conn).await?;
                    if is_lock_timeout(&error) && attempt < ATTEMPTS {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))) => {}
                            () = context.stop.wait() => {
                                return Err(ActionError::Cancelled(
                                    "the index build was waiting for a lock".into(),
                                ));
                            }
                        }
                        continue;
                    }
                    return Err(ActionError::Refused(format!(
                        "{}{} after {attempt} attempt(s)",
                        describe(&error),
                        if cleaned {
                            "; the INVALID index it left was dropped"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
        let build_ms = started.elapsed().as_millis() as i64;
        let (oid, valid) = index(&mut conn, &self.schema, &self.index_name)
            .await?
            .ok_or_else(|| {
                ActionError::Refused("the index is missing right after it was built".into())
            })?;
        if !valid {
            drop_if_invalid(self, &mut conn).await?;
            return Err(ActionError::Refused(
                "the build finished but left the index INVALID; it was dropped".into(),
            ));
        }
        let size: i64 = sqlx::query_scalar(marked_sql!("SELECT pg_relation_size($1::oid)"))
            .bind(oid)
            .fetch_one(&mut conn)
            .await
            .map_err(ActionError::from)?;
        Ok(IndexBuilt {
            index_name: self.index_name.clone(),
            schema: self.schema.clone(),
            table_name: self.table.clone(),
            columns: self.columns.clone(),
            include: self.include.clone(),
            predicate: self.predicate.clone(),
            statement,
            index_oid: oid,
            size_bytes: Some(size),
            build_ms: Some(build_ms),
            attempts: Some(attempt),
            concurrent: true,
            note: None,
        })
    }

    async fn rollback(
        &self,
        context: &Context,
        result: &IndexBuilt,
    ) -> Result<IndexDropped, ActionError> {
        let built_oid = result.index_oid;
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        match index(&mut conn, &self.schema, &self.index_name).await? {
            None => Ok(IndexDropped {
                dropped: false,
                index_name: None,
                note: Some("the index was already gone".into()),
            }),
            Some((oid, _)) if oid != built_oid => Err(ActionError::Refused(format!(
                "{} is no longer the index we built (OID {oid}, ours was {built_oid}); left alone",
                qualified(&self.schema, &self.index_name)
            ))),
            Some(_) => {
                drop_index(&mut conn, &self.schema, &self.index_name).await?;
                Ok(IndexDropped {
                    dropped: true,
                    index_name: Some(self.index_name.clone()),
                    note: None,
                })
            }
        }
    }

    /// After an interrupted run: an INVALID index of our name is the build's leftover (the name
    /// was free when the run began) and is dropped; a valid one means the build finished.
    async fn recover(&self, context: &Context) -> Result<Option<IndexBuilt>, ActionError> {
        let database = context.database()?;
        let mut conn = database.dedicated(context.timeout).await?;
        // A killed executor's build may still be running in its orphaned session (the server
        // notices a vanished client only when it next talks to it): stop that first.
        stop_orphaned_build(&mut conn, &self.statement()).await?;
        match index(&mut conn, &self.schema, &self.index_name).await? {
            Some((oid, true)) => Ok(Some(IndexBuilt {
                index_name: self.index_name.clone(),
                schema: self.schema.clone(),
                table_name: self.table.clone(),
                columns: Vec::new(),
                include: Vec::new(),
                predicate: None,
                statement: self.statement(),
                index_oid: oid,
                size_bytes: None,
                build_ms: None,
                attempts: None,
                concurrent: true,
                note: Some("the build finished while the executor was stopped".into()),
            })),
            Some((_, false)) => {
                drop_if_invalid(self, &mut conn).await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }
}

/// Cancels (then terminates) another session of ours running exactly `statement`, and waits
/// until it is gone.
async fn stop_orphaned_build(conn: &mut PgConnection, statement: &str) -> Result<(), ActionError> {
    let find = "SELECT pid FROM pg_stat_activity WHERE application_name = 'startupmonkey-executor' \
            AND pid <> pg_backend_pid() AND datname = current_database() AND query = $1";
    for (attempt, function) in ["pg_cancel_backend", "pg_terminate_backend"]
        .iter()
        .enumerate()
    {
        let pids: Vec<i32> = sqlx::query_scalar(find)
            .bind(crate::databases::marked(statement))
            .fetch_all(&mut *conn)
            .await
            .map_err(ActionError::from)?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in &pids {
            let _ = sqlx::query(sqlx::AssertSqlSafe(marked(&format!(
                "SELECT {function}($1)"
            ))))
            .bind(pid)
            .execute(&mut *conn)
            .await;
        }
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let left: i64 = sqlx::query_scalar(marked_sql!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)"
            ))
            .bind(&pids)
            .fetch_one(&mut *conn)
            .await
            .map_err(ActionError::from)?;
            if left == 0 {
                return Ok(());
            }
        }
        if attempt == 1 {
            return Err(ActionError::Refused(format!(
                "the interrupted build (pids {pids:?}) would not stop"
            )));
        }
    }
    Ok(())
}

/// Drops our index if it exists and is INVALID; true when it did.
async fn drop_if_invalid(plan: &CreateIndex, conn: &mut PgConnection) -> Result<bool, ActionError> {
    match index(conn, &plan.schema, &plan.index_name).await? {
        Some((_, false)) => {
            drop_index(conn, &plan.schema, &plan.index_name).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

async fn table_exists(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<bool, ActionError> {
    sqlx::query_scalar(marked_sql!(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm'))"
    ))
    .bind(schema)
    .bind(table)
    .fetch_one(conn)
    .await
    .map_err(ActionError::from)
}

/// The index `schema.name`: its OID and whether it is valid.
async fn index(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
) -> Result<Option<(i64, bool)>, ActionError> {
    sqlx::query_as::<_, (i64, bool)>(marked_sql!(
        "SELECT c.oid::int8, i.indisvalid FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid \
         WHERE n.nspname = $1 AND c.relname = $2"
    ))
    .bind(schema)
    .bind(name)
    .fetch_optional(conn)
    .await
    .map_err(ActionError::from)
}

/// `DROP INDEX CONCURRENTLY`, retried while a lock is busy.
async fn drop_index(conn: &mut PgConnection, schema: &str, name: &str) -> Result<(), ActionError> {
    let statement = format!(
        "DROP INDEX CONCURRENTLY IF EXISTS {}",
        qualified(schema, name)
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        match sqlx::query(sqlx::AssertSqlSafe(marked(&statement)))
            .persistent(false)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_lock_timeout(&e) && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
            }
            Err(e) => {
                return Err(ActionError::Refused(format!(
                    "{statement}: {}",
                    describe(&e)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_analysers_metadata_becomes_a_quoted_statement() {
        let plan = CreateIndex::from_metadata(&json!({
            "schema": "Sales Data", "table_name": "Order \"Items\"", "index_name": "idx_order_items_customer_id",
            "columns": [{"name": "Customer Id", "descending": false}, {"name": "created_at", "descending": true}],
            "statement": "DROP TABLE users -- never run as given",
        }))
        .unwrap();
        assert_eq!(
            plan.statement(),
            r#"CREATE INDEX CONCURRENTLY "idx_order_items_customer_id" ON "Sales Data"."Order ""Items""" ("Customer Id", "created_at" DESC)"#
        );
    }

    #[test]
    fn included_columns_are_quoted_after_the_keys() {
        let plan = CreateIndex::from_metadata(&json!({
            "schema": "public", "table_name": "orders", "index_name": "idx_orders_customer_id_incl_total",
            "columns": [{"name": "customer_id"}], "include": ["Total", "id"],
        }))
        .unwrap();
        assert_eq!(
            plan.statement(),
            r#"CREATE INDEX CONCURRENTLY "idx_orders_customer_id_incl_total" ON "public"."orders" ("customer_id") INCLUDE ("Total", "id")"#
        );
    }

    #[test]
    fn an_expression_key_applies_its_function_to_the_quoted_column() {
        let plan = CreateIndex::from_metadata(&json!({
            "table_name": "users", "index_name": "idx_users_lower_email",
            "columns": [{"name": "Email", "function": "lower"}],
        }))
        .unwrap();
        assert_eq!(
            plan.statement(),
            r#"CREATE INDEX CONCURRENTLY "idx_users_lower_email" ON "public"."users" (lower("Email"))"#
        );
    }

    #[test]
    fn a_column_may_be_included_beside_a_function_of_it() {
        let plan = CreateIndex::from_metadata(&json!({
            "table_name": "customers", "index_name": "i",
            "columns": [{"name": "email", "function": "lower"}], "include": ["id", "email"],
        }))
        .unwrap();
        assert_eq!(
            plan.statement(),
            r#"CREATE INDEX CONCURRENTLY "i" ON "public"."customers" (lower("email")) INCLUDE ("id", "email")"#
        );
    }

    #[test]
    fn a_partial_index_writes_its_predicate_from_the_typed_constant() {
        let plan = CreateIndex::from_metadata(&json!({
            "table_name": "orders", "index_name": "idx_orders_created_at_where_status",
            "columns": [{"name": "created_at"}], "include": ["id"],
            "predicate": {"column": "Status", "value": {"kind": "text", "value": "it's pending"}},
        }))
        .unwrap();
        assert_eq!(
            plan.statement(),
            r#"CREATE INDEX CONCURRENTLY "idx_orders_created_at_where_status" ON "public"."orders" ("created_at") INCLUDE ("id") WHERE "Status" = 'it''s pending'"#
        );
        for (predicate, why) in [
            (
                json!({"column": "s", "value": {"kind": "number", "value": "1 OR true"}}),
                "cannot be written safely",
            ),
            (
                json!({"column": "s", "value": {"kind": "text", "value": "a\\b"}}),
                "cannot be written safely",
            ),
            (
                json!({"column": "", "value": {"kind": "integer", "value": 1}}),
                "not a valid identifier",
            ),
            (
                json!({"column": "s", "value": {"kind": "sql", "value": "1=1"}}),
                "predicate:",
            ),
            (json!("status = 'x'"), "predicate:"),
        ] {
            let error = CreateIndex::from_metadata(&json!({
                "table_name": "orders", "columns": [{"name": "created_at"}], "predicate": predicate,
            }))
            .unwrap_err()
            .to_string();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn a_plan_stored_before_included_columns_reads_back_the_same() {
        let stored = json!({"schema": "public", "table": "posts", "index_name": "i", "columns": [{"name": "user_id", "descending": false}]});
        let plan: CreateIndex = serde_json::from_value(stored.clone()).unwrap();
        assert!(plan.include.is_empty());
        assert_eq!(serde_json::to_value(&plan).unwrap(), stored);
    }

    #[test]
    fn the_originals_metadata_still_works() {
        let plan =
            CreateIndex::from_metadata(&json!({"table_name": "posts", "column_name": "user_id"}))
                .unwrap();
        assert_eq!(
            plan.statement(),
            r#"CREATE INDEX CONCURRENTLY "idx_posts_user_id" ON "public"."posts" ("user_id")"#
        );
    }

    #[test]
    fn malformed_metadata_is_refused_with_the_reason() {
        for (metadata, reason) in [
            (json!({}), "table_name is missing"),
            (
                json!({"table_name": 5, "column_name": "a"}),
                "table_name must be a string",
            ),
            (json!({"table_name": "t", "columns": []}), "1 to 32 columns"),
            (
                json!({"table_name": "t", "columns": [{"name": "a\u{0}"}]}),
                "not a valid identifier",
            ),
            (
                json!({"table_name": "t", "column_name": "c", "index_name": "x".repeat(64)}),
                "not a valid identifier",
            ),
            (json!({"table_name": "t", "columns": "a"}), "must be a list"),
            (
                json!({"table_name": "t", "column_name": "a", "include": "b"}),
                "include must be a list",
            ),
            (
                json!({"table_name": "t", "column_name": "a", "include": [1]}),
                "include must list column names",
            ),
            (
                json!({"table_name": "t", "column_name": "a", "include": ["a"]}),
                "both a key and an included column",
            ),
            (
                json!({"table_name": "t", "column_name": "a", "include": ["b\u{0}"]}),
                "not a valid identifier",
            ),
            (
                json!({"table_name": "t", "columns": [{"name": "a", "function": "md5); DROP TABLE t; --"}]}),
                "unknown variant",
            ),
        ] {
            let error = CreateIndex::from_metadata(&metadata)
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{metadata}: {error}");
        }
    }
}
