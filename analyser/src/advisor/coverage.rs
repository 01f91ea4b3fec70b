//! Whether an existing index already serves a candidate: a valid b-tree index whose leading key
//! columns are the candidate's, in the same directions or all reversed (a b-tree reads both ways).
//! An INVALID index (a failed CREATE INDEX CONCURRENTLY) serves nothing. A partial index serves
//! only a partial candidate with the same predicate (`column = constant`); a partial candidate is
//! also served by a whole-table index that leads with the predicate's column and then its keys.
//! Known limit: the
//! direction of equality columns does not matter, but is compared like the others, so an index
//! `(a DESC, b DESC)` is not seen to serve `a = $1 ORDER BY b DESC` (proposed as `(a, b DESC)`).

use pg_query::NodeEnum;
use proto::metrics::IndexStats;
use proto::sql::IndexPredicate;

use super::candidates::KeyColumn;

/// True when `index` makes the candidate of `keys` (over the rows of `predicate`) redundant.
pub fn covers(index: &IndexStats, keys: &[KeyColumn], predicate: Option<&IndexPredicate>) -> bool {
    if !index.is_valid || !index.definition.contains("USING btree") {
        return false;
    }
    match (rows_of(&index.definition), predicate) {
        (Rows::All, None) => covers_keys(index, keys),
        (Rows::All, Some(p)) => {
            let mut leading = vec![KeyColumn::column(&p.column, false)];
            leading.extend(keys.iter().filter(|k| k.name != p.column).cloned());
            covers_keys(index, &leading)
        }
        (Rows::Only(theirs), Some(ours)) => &theirs == ours && covers_keys(index, keys),
        _ => false,
    }
}

/// Which rows an index holds.
#[derive(Debug, PartialEq)]
enum Rows {
    All,
    /// `WHERE column = constant`.
    Only(IndexPredicate),
    /// Any other predicate (or a definition that does not parse).
    Other,
}

/// Read from the index's definition (`pg_get_indexdef`) by PostgreSQL's parser: PostgreSQL writes
/// a predicate back as `WHERE ((status)::text = 'pending'::text)`.
fn rows_of(definition: &str) -> Rows {
    let Ok(parsed) = pg_query::parse(definition, 0) else {
        return Rows::Other;
    };
    let Some(NodeEnum::IndexStmt(index)) = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|s| s.node.as_ref())
    else {
        return Rows::Other;
    };
    match &index.where_clause {
        None => Rows::All,
        Some(condition) => super::statement::column_equals_constant(condition)
            .map_or(Rows::Other, |(column, value)| {
                Rows::Only(IndexPredicate { column, value })
            }),
    }
}

fn covers_keys(index: &IndexStats, candidate: &[KeyColumn]) -> bool {
    if candidate.is_empty() || index.columns.len() < candidate.len() {
        return false;
    }
    let keys: Vec<(String, bool)> = index.columns.iter().map(|c| parse_key(c)).collect();
    let same = candidate
        .iter()
        .zip(&keys)
        .all(|(want, (name, desc))| is_key(want, name) && want.descending == *desc);
    let reversed = candidate
        .iter()
        .zip(&keys)
        .all(|(want, (name, desc))| is_key(want, name) && want.descending != *desc);
    same || reversed
}

/// Whether an index's key, as `parse_key` read it, is `want`: the same column, or the same
/// function of it (`lower(email)`, or `lower((email)::text)` for a varchar column).
fn is_key(want: &KeyColumn, key: &str) -> bool {
    match want.function {
        None => want.name == key,
        Some(function) => {
            let quoted = super::naming::quote_ident(&want.name);
            let argument = key
                .strip_prefix(function.as_str())
                .and_then(|rest| rest.strip_prefix('('))
                .and_then(|rest| rest.strip_suffix(')'));
            argument.is_some_and(|a| {
                let a = a.strip_suffix("::text").unwrap_or(a);
                let a = a
                    .strip_prefix('(')
                    .and_then(|a| a.strip_suffix(')'))
                    .unwrap_or(a);
                a == want.name || a == quoted
            })
        }
    }
}

/// `pg_get_indexdef(oid, k, true)` gives a column as `name`, `"Quoted Name"` or `name DESC`
/// (plus `NULLS …`); an expression stays as it is (`lower(email)`), its direction after it.
fn parse_key(text: &str) -> (String, bool) {
    let text = text.trim();
    if let Some(open) = text.find('(')
        && !text[..open].contains(['"', ' '])
        && let Some(close) = text.rfind(')')
    {
        let rest = &text[close + 1..];
        return (
            text[..=close].to_owned(),
            rest.split_whitespace().next() == Some("DESC"),
        );
    }
    let (name, rest) = if let Some(quoted) = text.strip_prefix('"') {
        match quoted.find('"') {
            Some(end) => (quoted[..end].replace("\"\"", "\""), &quoted[end + 1..]),
            None => (text.to_owned(), ""),
        }
    } else {
        match text.find(' ') {
            Some(space) => (text[..space].to_owned(), &text[space..]),
            None => (text.to_owned(), ""),
        }
    };
    (name, rest.split_whitespace().next() == Some("DESC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(index: &IndexStats, keys: &[KeyColumn]) -> bool {
        super::covers(index, keys, None)
    }

    fn index(columns: &[&str], valid: bool) -> IndexStats {
        IndexStats {
            qualified_table: "public.posts".into(),
            name: "i".into(),
            definition: format!(
                "CREATE INDEX i ON public.posts USING btree ({})",
                columns.join(", ")
            ),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            is_valid: valid,
            ..Default::default()
        }
    }

    fn key(name: &str, descending: bool) -> KeyColumn {
        KeyColumn::column(name, descending)
    }

    #[test]
    fn a_leading_prefix_in_either_direction_covers() {
        let existing = index(&["user_id", "created_at DESC", "id"], true);
        assert!(covers(&existing, &[key("user_id", false)]));
        assert!(covers(
            &existing,
            &[key("user_id", false), key("created_at", true)]
        ));
        assert!(covers(
            &existing,
            &[key("user_id", true), key("created_at", false)]
        ));
        assert!(!covers(
            &existing,
            &[key("user_id", false), key("created_at", false)]
        ));
        assert!(!covers(&existing, &[key("created_at", true)]));
    }

    #[test]
    fn invalid_and_non_btree_indexes_cover_nothing() {
        assert!(!covers(
            &index(&["user_id"], false),
            &[key("user_id", false)]
        ));
        let mut hash = index(&["user_id"], true);
        hash.definition = "CREATE INDEX i ON public.posts USING hash (user_id)".into();
        assert!(!covers(&hash, &[key("user_id", false)]));
    }

    #[test]
    fn an_expression_index_covers_the_same_function_of_its_column() {
        let lower = |name: &str| KeyColumn {
            name: name.into(),
            descending: false,
            function: Some(crate::advisor::candidates::KeyFunction::Lower),
        };
        assert!(covers(&index(&["lower(email)"], true), &[lower("email")]));
        assert!(covers(
            &index(&["lower((email)::text)"], true),
            &[lower("email")]
        ));
        assert!(covers(
            &index(&[r#"lower("Email")"#], true),
            &[lower("Email")]
        ));
        assert!(!covers(&index(&["upper(email)"], true), &[lower("email")]));
        assert!(!covers(&index(&["email"], true), &[lower("email")]));
        assert!(!covers(
            &index(&["lower(email)"], true),
            &[key("email", false)]
        ));
    }

    #[test]
    fn quoted_and_expression_keys_are_read_as_written() {
        let existing = index(&[r#""UserId""#, "lower(email)"], true);
        assert!(covers(&existing, &[key("UserId", false)]));
        assert!(!covers(
            &existing,
            &[key("UserId", false), key("email", false)]
        ));
    }

    #[test]
    fn a_partial_index_serves_only_the_same_predicate() {
        use proto::sql::SqlConstant;
        let pending = IndexPredicate {
            column: "status".into(),
            value: SqlConstant::Text("pending".into()),
        };
        let mut partial = index(&["created_at"], true);
        partial.definition = "CREATE INDEX i ON public.orders USING btree (created_at) \
            INCLUDE (id) WHERE ((status)::text = 'pending'::text)"
            .into();
        let created_at = [key("created_at", false)];
        assert!(super::covers(&partial, &created_at, Some(&pending)));
        assert!(!covers(&partial, &created_at), "not every row is in it");
        let paid = IndexPredicate {
            value: SqlConstant::Text("paid".into()),
            ..pending.clone()
        };
        assert!(!super::covers(&partial, &created_at, Some(&paid)));
        partial.definition =
            "CREATE INDEX i ON public.orders USING btree (created_at) WHERE (NOT done)".into();
        assert!(!super::covers(&partial, &created_at, Some(&pending)));
        // A whole-table index on the predicate's column, then the keys.
        let whole = index(&["status", "created_at"], true);
        assert!(super::covers(&whole, &created_at, Some(&pending)));
        assert!(!super::covers(
            &index(&["created_at"], true),
            &created_at,
            Some(&pending)
        ));
    }
}
