//! Index column lists a DBA would try for one table use: equality columns first (they narrow the
//! scan to one range of the index); then, when the statement sorts by this table's columns, the
//! sort columns in the sort's direction, so `ORDER BY … LIMIT` reads the first rows and stops;
//! otherwise one range column. Join columns count as equality for the inner side of a nested loop.
//! A covering variant carries the other few columns a statement reads in the index's leaf pages
//! (`INCLUDE`), so the statement is answered by an index-only scan without visiting the table.
//! Where the statement compares a column with a constant written into it (`status = 'pending'`,
//! or a parameter the collector saw always hold one value), a partial variant indexes only those
//! rows (`… WHERE status = 'pending'`) on the rest of the keys; the planner (HypoPG) tells
//! whether the constant selects few enough rows for it to pay.

pub use proto::sql::IndexFunction as KeyFunction;
use proto::sql::IndexPredicate;

use proto::metrics::IndexStats;

use super::coverage;
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

/// An index to try: its key columns, the columns it carries without ordering by them, and for
/// a partial index the rows it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    pub keys: Vec<KeyColumn>,
    pub include: Vec<String>,
    pub predicate: Option<IndexPredicate>,
}

impl Candidate {
    pub fn plain(keys: Vec<KeyColumn>) -> Self {
        Self {
            keys,
            include: Vec::new(),
            predicate: None,
        }
    }
}

/// The covering variant of `base` for a statement that reads only a few more columns of the
/// table than the keys (and the partial index's predicate column, which its rows all share);
/// `None` when it reads the whole row, nothing more, or too much more.
pub fn covering(base: &Candidate, table_use: &TableUse) -> Option<Candidate> {
    let read = table_use.read_columns.as_ref()?;
    let include: Vec<String> = read
        .iter()
        .filter(|c| {
            !base
                .keys
                .iter()
                .any(|k| &k.name == *c && k.function.is_none())
                && base.predicate.as_ref().is_none_or(|p| &p.column != *c)
        })
        .cloned()
        .collect();
    (!include.is_empty() && include.len() <= MAX_INCLUDE).then(|| Candidate {
        keys: base.keys.clone(),
        include,
        predicate: base.predicate.clone(),
    })
}

/// Every candidate for one table use that none of the table's `existing` indexes serves: each
/// key list of [`for_use`] and each [`partial`] one, with its [`covering`] variant. Nothing when
/// an existing partial index already serves the use.
pub fn uncovered(table_use: &TableUse, existing: &[&IndexStats]) -> Vec<Candidate> {
    let covered = |c: &Candidate| {
        existing
            .iter()
            .any(|i| coverage::covers(i, &c.keys, c.predicate.as_ref()))
    };
    let partial = partial(table_use);
    if partial.iter().any(covered) {
        return Vec::new();
    }
    let plain = for_use(table_use).into_iter().map(Candidate::plain);
    let mut found = Vec::new();
    for base in plain.chain(partial) {
        if covered(&base) {
            continue;
        }
        let covering = covering(&base, table_use);
        for candidate in std::iter::once(base).chain(covering) {
            if !found.contains(&candidate) {
                found.push(candidate);
            }
        }
    }
    found
}

/// At most this many partial candidates per table use (one per constant it compares with).
pub const MAX_PARTIAL: usize = 2;

/// Partial candidates for one table use: for each column it compares with a constant, an index
/// of only the rows holding that constant, on the keys [`for_use`] gives for the rest of the
/// statement (the column itself when nothing else is left).
pub fn partial(table_use: &TableUse) -> Vec<Candidate> {
    table_use
        .equality_constants
        .iter()
        .take(MAX_PARTIAL)
        .map(|(column, value)| {
            let mut rest = table_use.clone();
            rest.equality.retain(|c| c != column);
            rest.equality_constants.clear();
            let keys = for_use(&rest)
                .into_iter()
                .next()
                .unwrap_or_else(|| vec![KeyColumn::column(column, false)]);
            Candidate {
                keys,
                include: Vec::new(),
                predicate: Some(IndexPredicate {
                    column: column.clone(),
                    value: value.clone(),
                }),
            }
        })
        .collect()
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
        let keys = Candidate::plain(for_use(&uses[0])[0].clone());
        let variant = covering(&keys, &uses[0]).unwrap();
        assert_eq!(names(&variant.keys), ["customer_id", "created_at DESC"]);
        assert_eq!(variant.include, ["id", "total"]);
        let first = |sql: &str| {
            let uses = analyse(sql).unwrap();
            covering(&Candidate::plain(for_use(&uses[0])[0].clone()), &uses[0])
        };
        assert!(first("SELECT * FROM orders WHERE customer_id = $1").is_none());
        assert!(first("SELECT count(*) FROM orders WHERE customer_id = $1").is_none());
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

    #[test]
    fn a_constant_filter_gets_a_partial_index_on_the_rest_of_the_statement() {
        let uses = analyse(
            "SELECT id, customer_id, created_at FROM orders WHERE status = 'pending' \
             ORDER BY created_at LIMIT 50",
        )
        .unwrap();
        let [pending] = partial(&uses[0]).try_into().unwrap();
        assert_eq!(names(&pending.keys), ["created_at"]);
        let predicate = pending.predicate.clone().unwrap();
        assert_eq!(predicate.condition(), r#""status" = 'pending'"#);
        let variant = covering(&pending, &uses[0]).unwrap();
        assert_eq!(
            variant.include,
            ["id", "customer_id"],
            "not the predicate's column"
        );
        assert_eq!(variant.predicate, pending.predicate);

        let count = analyse("SELECT count(*) FROM jobs WHERE done = false").unwrap();
        let [alone] = partial(&count[0]).try_into().unwrap();
        assert_eq!(
            names(&alone.keys),
            ["done"],
            "the column itself when nothing is left"
        );
        let bound = analyse("SELECT * FROM jobs WHERE queue = $1 AND done = false").unwrap();
        assert_eq!(names(&partial(&bound[0])[0].keys), ["queue"]);
        assert!(partial(&analyse("SELECT * FROM t WHERE a = $1").unwrap()[0]).is_empty());
    }
}
