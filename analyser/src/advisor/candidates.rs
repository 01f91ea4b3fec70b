//! Index column lists a DBA would try for one table use: equality columns first (they narrow the
//! scan to one range of the index); then, when the statement sorts by this table's columns, the
//! sort columns in the sort's direction, so `ORDER BY … LIMIT` reads the first rows and stops;
//! otherwise one range column. Join columns count as equality for the inner side of a nested loop.

use super::statement::TableUse;

/// An index key column and its direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyColumn {
    pub name: String,
    pub descending: bool,
}

/// Candidate key column lists for one table use, the most specific first; empty when the
/// statement filters on nothing an index can serve.
pub fn for_use(table_use: &TableUse) -> Vec<Vec<KeyColumn>> {
    let ascending = |name: &String| KeyColumn {
        name: name.clone(),
        descending: false,
    };
    let mut leading: Vec<KeyColumn> = table_use.equality.iter().map(ascending).collect();
    for column in &table_use.join {
        if !leading.iter().any(|k| &k.name == column) {
            leading.push(ascending(column));
        }
    }
    let mut candidates = Vec::new();
    let sort_extends = !table_use.order_by.is_empty()
        && table_use
            .order_by
            .iter()
            .all(|(c, _)| !leading.iter().any(|k| &k.name == c));
    if sort_extends && (table_use.limit || !leading.is_empty()) {
        let mut full = leading.clone();
        full.extend(
            table_use
                .order_by
                .iter()
                .map(|(name, descending)| KeyColumn {
                    name: name.clone(),
                    descending: *descending,
                }),
        );
        candidates.push(full);
    } else if let Some(range) = table_use
        .range
        .iter()
        .find(|c| !leading.iter().any(|k| &k.name == *c))
    {
        let mut with_range = leading.clone();
        with_range.push(ascending(range));
        candidates.push(with_range);
    }
    if !leading.is_empty() && !candidates.contains(&leading) {
        candidates.push(leading);
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisor::statement::analyse;

    fn names(candidate: &[KeyColumn]) -> Vec<String> {
        candidate
            .iter()
            .map(|k| format!("{}{}", k.name, if k.descending { " DESC" } else { "" }))
            .collect()
    }

    fn best(sql: &str) -> Vec<String> {
        let uses = analyse(sql).unwrap();
        for_use(&uses[0])
            .first()
            .map(|c| names(c))
            .unwrap_or_default()
    }

    #[test]
    fn s1_gets_user_id_then_created_at_descending() {
        assert_eq!(
            best("SELECT * FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"),
            ["user_id", "created_at DESC"]
        );
    }

    #[test]
    fn equality_then_one_range_column() {
        assert_eq!(
            best("SELECT * FROM orders WHERE status = $1 AND created_at > $2"),
            ["status", "created_at"]
        );
    }

    #[test]
    fn the_equality_prefix_alone_is_also_a_candidate() {
        let uses = analyse("SELECT * FROM orders WHERE status = $1 AND created_at > $2").unwrap();
        let all: Vec<_> = for_use(&uses[0]).iter().map(|c| names(c)).collect();
        assert_eq!(all, [vec!["status", "created_at"], vec!["status"]]);
    }

    #[test]
    fn a_bare_sort_without_limit_or_filter_gets_nothing() {
        assert!(best("SELECT * FROM posts ORDER BY created_at").is_empty());
        assert_eq!(
            best("SELECT * FROM posts ORDER BY created_at DESC LIMIT $1"),
            ["created_at DESC"]
        );
    }

    #[test]
    fn nothing_to_serve_means_no_candidate() {
        assert!(best("SELECT count(*) FROM posts").is_empty());
    }
}
