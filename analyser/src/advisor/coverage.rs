//! Whether an existing index already serves a candidate: a valid b-tree index whose leading key
//! columns are the candidate's, in the same directions or all reversed (a b-tree reads both ways).
//! An INVALID index (a failed CREATE INDEX CONCURRENTLY) serves nothing. Known limit: the
//! direction of equality columns does not matter, but is compared like the others, so an index
//! `(a DESC, b DESC)` is not seen to serve `a = $1 ORDER BY b DESC` (proposed as `(a, b DESC)`).

use proto::metrics::IndexStats;

use super::candidates::KeyColumn;

/// True when `index` makes `candidate` redundant.
pub fn covers(index: &IndexStats, candidate: &[KeyColumn]) -> bool {
    if !index.is_valid || candidate.is_empty() || index.columns.len() < candidate.len() {
        return false;
    }
    if !index.definition.contains("USING btree") {
        return false;
    }
    let keys: Vec<(String, bool)> = index.columns.iter().map(|c| parse_key(c)).collect();
    let same = candidate
        .iter()
        .zip(&keys)
        .all(|(want, (name, desc))| &want.name == name && want.descending == *desc);
    let reversed = candidate
        .iter()
        .zip(&keys)
        .all(|(want, (name, desc))| &want.name == name && want.descending != *desc);
    same || reversed
}

/// `pg_get_indexdef(oid, k, true)` gives a column as `name`, `"Quoted Name"` or `name DESC`
/// (plus `NULLS …`); an expression stays as it is and matches no column.
fn parse_key(text: &str) -> (String, bool) {
    let text = text.trim();
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

    fn index(columns: &[&str], valid: bool) -> IndexStats {
        IndexStats {
            qualified_table: "public.posts".into(),
            name: "i".into(),
            definition: "CREATE INDEX i ON public.posts USING btree (...)".into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            is_valid: valid,
            ..Default::default()
        }
    }

    fn key(name: &str, descending: bool) -> KeyColumn {
        KeyColumn {
            name: name.into(),
            descending,
        }
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
    fn quoted_and_expression_keys_are_read_as_written() {
        let existing = index(&[r#""UserId""#, "lower(email)"], true);
        assert!(covers(&existing, &[key("UserId", false)]));
        assert!(!covers(
            &existing,
            &[key("UserId", false), key("email", false)]
        ));
    }
}
