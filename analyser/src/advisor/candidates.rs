//! Index column lists a DBA would try for one table use: equality columns first (they narrow the
//! scan to one range of the index); then, when the statement sorts by this table's columns, the
//! sort columns in the sort's direction, so `ORDER BY … LIMIT` reads the first rows and stops;
//! otherwise one range column. Join columns count as equality for the inner side of a nested loop.
//! A covering variant carries the other few columns a statement reads in the index's leaf pages
//! (`INCLUDE`), so the statement is answered by an index-only scan without visiting the table.

pub use proto::sql::IndexFunction as KeyFunction;

use super::statement::TableUse;

/// An index key: a column (or a function of it, for an expression index) and its direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyColumn {
    pub name: String,
    pub descending: bool,
    pub function: Option<KeyFunction>,
}

impl KeyColumn {
    pub fn column(name: &str, descending: bool) -> Self {
        Self {
            name: name.to_owned(),
            descending,
            function: None,
        }
    }

    /// How the key reads in an index definition's key list, unquoted: `email`, `lower(email)`.
    pub fn text(&self) -> String {
        match self.function {
            Some(f) => format!("{}({})", f.as_str(), self.name),
            None => self.name.clone(),
        }
    }
}

/// `lower(email)` or `upper("Email")` (as `statement` writes an expression) → the function and
/// the column; `None` for any other expression.
pub fn function_key(expression: &str) -> Option<(KeyFunction, String)> {
    let (function, rest) = expression.split_once('(')?;
    let function = match function.trim() {
        "lower" => KeyFunction::Lower,
        "upper" => KeyFunction::Upper,
        _ => return None,
    };
    let argument = rest.strip_suffix(')')?.trim();
    let column = match argument.strip_prefix('"') {
        Some(quoted) => {
            let inner = quoted.strip_suffix('"')?;
            // A lone quote inside means the argument is more than one quoted identifier.
            if inner.replace("\"\"", "").contains('"') {
                return None;
            }
            inner.replace("\"\"", "\"")
        }
        None => {
            let plain = argument.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && argument
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
            if !plain {
                return None;
            }
            argument.to_owned()
        }
    };
    Some((function, column))
}

/// At most this many `INCLUDE` columns: beyond that the index approaches a copy of the table.
pub const MAX_INCLUDE: usize = 3;

/// An index to try: its key columns, and the columns it carries without ordering by them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    pub keys: Vec<KeyColumn>,
    pub include: Vec<String>,
}

impl Candidate {
    pub fn plain(keys: Vec<KeyColumn>) -> Self {
        Self {
            keys,
            include: Vec::new(),
        }
    }
}

/// The covering variant of `keys` for a statement that reads only a few more columns of the
/// table than the keys; `None` when it reads the whole row, nothing more, or too much more.
pub fn covering(keys: &[KeyColumn], table_use: &TableUse) -> Option<Candidate> {
    let read = table_use.read_columns.as_ref()?;
    let include: Vec<String> = read
        .iter()
        .filter(|c| !keys.iter().any(|k| &k.name == *c && k.function.is_none()))
        .cloned()
        .collect();
    (!include.is_empty() && include.len() <= MAX_INCLUDE).then(|| Candidate {
        keys: keys.to_vec(),
        include,
    })
}

/// Candidate key column lists for one table use, the most specific first; empty when the
/// statement filters on nothing an index can serve.
pub fn for_use(table_use: &TableUse) -> Vec<Vec<KeyColumn>> {
    let ascending = |name: &String| KeyColumn::column(name, false);
    let mut leading: Vec<KeyColumn> = table_use.equality.iter().map(ascending).collect();
    for expression in &table_use.equality_expressions {
        if let Some((function, column)) = function_key(expression) {
            let key = KeyColumn {
                name: column,
                descending: false,
                function: Some(function),
            };
            if !leading.contains(&key) {
                leading.push(key);
            }
        }
    }
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
                .map(|(name, descending)| KeyColumn::column(name, *descending)),
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
            .map(|k| format!("{}{}", k.text(), if k.descending { " DESC" } else { "" }))
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
    fn a_statement_reading_a_few_more_columns_gets_a_covering_variant() {
        let uses = analyse(
            "SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10",
        )
        .unwrap();
        let keys = &for_use(&uses[0])[0];
        let variant = covering(keys, &uses[0]).unwrap();
        assert_eq!(names(&variant.keys), ["customer_id", "created_at DESC"]);
        assert_eq!(variant.include, ["id", "total"]);
        let whole_row = analyse("SELECT * FROM orders WHERE customer_id = $1").unwrap();
        assert!(covering(&for_use(&whole_row[0])[0], &whole_row[0]).is_none());
        let keys_only = analyse("SELECT count(*) FROM orders WHERE customer_id = $1").unwrap();
        assert!(covering(&for_use(&keys_only[0])[0], &keys_only[0]).is_none());
    }

    #[test]
    fn a_case_insensitive_lookup_gets_an_expression_key() {
        assert_eq!(
            best("SELECT * FROM users WHERE lower(email) = lower($1)"),
            ["lower(email)"]
        );
        assert_eq!(
            best(r#"SELECT * FROM users WHERE account_id = $1 AND upper("Code") = $2"#),
            ["account_id", "upper(Code)"]
        );
        assert_eq!(
            function_key(r#"lower("Odd ""Name""")"#),
            Some((KeyFunction::Lower, r#"Odd "Name""#.to_owned()))
        );
        for other in [
            "md5(token)",
            "lower(a, b)",
            r#"lower("a" || "b")"#,
            "lower(Email)",
            "lower(x)::text",
        ] {
            assert_eq!(function_key(other), None, "{other}");
        }
    }

    #[test]
    fn nothing_to_serve_means_no_candidate() {
        assert!(best("SELECT count(*) FROM posts").is_empty());
    }
}
