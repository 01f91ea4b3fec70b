//! The index the advisor proposes, written out: a name within PostgreSQL's 63-byte identifier
//! limit that no index of the schema already has, and the exact `CREATE INDEX CONCURRENTLY`
//! statement with every identifier quoted, so names with capitals, spaces or quotes are safe.

pub use proto::sql::{MAX_IDENTIFIER_BYTES, qualified, quote_ident};

use super::candidates::{Candidate, KeyColumn};

/// `idx_<table>_<columns>[_incl_<columns>][_where_<column>]`: letters, digits and `_` only (lower-cased), at most 63 bytes (a long
/// name is cut and ends in a hash of the whole so two long names stay distinct), and different
/// from every name in `taken` (a numeric suffix when needed).
pub fn index_name(table: &str, candidate: &Candidate, taken: &[String]) -> String {
    let mut base = format!("idx_{}", plain(table));
    for column in &candidate.keys {
        base.push('_');
        if let Some(f) = column.function {
            base.push_str(f.as_str());
            base.push('_');
        }
        base.push_str(&plain(&column.name));
    }
    if !candidate.include.is_empty() {
        base.push_str("_incl");
        for column in &candidate.include {
            base.push('_');
            base.push_str(&plain(column));
        }
    }
    if let Some(predicate) = &candidate.predicate {
        base.push_str("_where_");
        base.push_str(&plain(&predicate.column));
    }
    for attempt in 1.. {
        let wanted = if attempt == 1 {
            base.clone()
        } else {
            format!("{base}_{attempt}")
        };
        let name = fit(&wanted);
        if !taken.iter().any(|t| t == &name) {
            return name;
        }
    }
    unreachable!("an unbounded range always yields a free name")
}

/// `CREATE INDEX CONCURRENTLY "name" ON "schema"."table" ("a", "b" DESC) INCLUDE ("c")`, and
/// the partial index's `WHERE`.
pub fn create_statement(schema: &str, table: &str, name: &str, candidate: &Candidate) -> String {
    format!(
        "CREATE INDEX CONCURRENTLY {} ON {}",
        quote_ident(name),
        definition(schema, table, candidate)
    )
}

/// `"schema"."table" ("a", "b" DESC) INCLUDE ("c") WHERE "d" = 'x'`: what follows `ON` in
/// `CREATE INDEX`.
pub fn definition(schema: &str, table: &str, candidate: &Candidate) -> String {
    format!(
        "{} ({}){}{}",
        qualified(schema, table),
        key_list(&candidate.keys),
        proto::sql::include_clause(&candidate.include),
        proto::sql::where_clause(candidate.predicate.as_ref())
    )
}

/// `"a", "b" DESC`: the key columns of an index definition.
pub fn key_list(columns: &[KeyColumn]) -> String {
    columns
        .iter()
        .map(|k| proto::sql::index_key(&k.name, k.function, k.descending))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plain(identifier: &str) -> String {
    identifier
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn fit(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name.to_owned();
    }
    let hash = proto::sql::fnv1a(name);
    let suffix = format!("_{:08x}", hash as u32);
    // `plain` leaves ASCII only, so any byte offset is a character boundary.
    format!("{}{suffix}", &name[..MAX_IDENTIFIER_BYTES - suffix.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisor::candidates::KeyFunction;

    fn key(name: &str, descending: bool) -> KeyColumn {
        KeyColumn::column(name, descending)
    }

    fn keys(columns: &[KeyColumn]) -> Candidate {
        Candidate::plain(columns.to_vec())
    }

    #[test]
    fn s1_statement_is_quoted_and_ordered() {
        let columns = keys(&[key("user_id", false), key("created_at", true)]);
        let name = index_name("posts", &columns, &[]);
        assert_eq!(name, "idx_posts_user_id_created_at");
        assert_eq!(
            create_statement("public", "posts", &name, &columns),
            r#"CREATE INDEX CONCURRENTLY "idx_posts_user_id_created_at" ON "public"."posts" ("user_id", "created_at" DESC)"#
        );
    }

    #[test]
    fn identifiers_that_need_quoting_are_quoted_exactly() {
        let columns = keys(&[key("User \"Id\"", false)]);
        let name = index_name("Order Items", &columns, &[]);
        assert_eq!(name, "idx_order_items_user__id_");
        assert_eq!(
            create_statement("Sales Data", "Order Items", &name, &columns),
            r#"CREATE INDEX CONCURRENTLY "idx_order_items_user__id_" ON "Sales Data"."Order Items" ("User ""Id""")"#
        );
    }

    #[test]
    fn long_names_fit_63_bytes_and_stay_distinct() {
        let long = "a_really_long_table_name_that_goes_on_and_on_and_on";
        let one = index_name(long, &keys(&[key("first_long_column_name", false)]), &[]);
        let two = index_name(long, &keys(&[key("second_long_column_name", false)]), &[]);
        assert_eq!(one.len(), MAX_IDENTIFIER_BYTES);
        assert_eq!(two.len(), MAX_IDENTIFIER_BYTES);
        assert_ne!(one, two);
    }

    #[test]
    fn a_taken_name_gets_a_suffix() {
        let columns = keys(&[key("user_id", false)]);
        let taken = vec!["idx_posts_user_id".to_owned()];
        assert_eq!(index_name("posts", &columns, &taken), "idx_posts_user_id_2");
    }

    #[test]
    fn an_expression_key_is_written_with_its_quoted_column() {
        let candidate = keys(&[KeyColumn {
            name: "Email".into(),
            descending: false,
            function: Some(KeyFunction::Lower),
        }]);
        let name = index_name("users", &candidate, &[]);
        assert_eq!(name, "idx_users_lower_email");
        assert_eq!(
            create_statement("public", "users", &name, &candidate),
            r#"CREATE INDEX CONCURRENTLY "idx_users_lower_email" ON "public"."users" (lower("Email"))"#
        );
    }

    #[test]
    fn a_covering_index_names_and_quotes_its_included_columns() {
        let candidate = Candidate {
            keys: vec![key("customer_id", false)],
            include: vec!["Total".into(), "id".into()],
            predicate: None,
        };
        let name = index_name("orders", &candidate, &[]);
        assert_eq!(name, "idx_orders_customer_id_incl_total_id");
        assert_eq!(
            create_statement("public", "orders", &name, &candidate),
            r#"CREATE INDEX CONCURRENTLY "idx_orders_customer_id_incl_total_id" ON "public"."orders" ("customer_id") INCLUDE ("Total", "id")"#
        );
    }

    #[test]
    fn a_partial_index_names_its_predicate_column_and_writes_its_condition() {
        let candidate = Candidate {
            keys: vec![key("created_at", false)],
            include: vec!["id".into()],
            predicate: Some(proto::sql::IndexPredicate {
                column: "Status".into(),
                value: proto::sql::SqlConstant::Text("it's pending".into()),
            }),
        };
        let name = index_name("orders", &candidate, &[]);
        assert_eq!(name, "idx_orders_created_at_incl_id_where_status");
        assert_eq!(
            create_statement("public", "orders", &name, &candidate),
            r#"CREATE INDEX CONCURRENTLY "idx_orders_created_at_incl_id_where_status" ON "public"."orders" ("created_at") INCLUDE ("id") WHERE "Status" = 'it''s pending'"#
        );
    }
}
