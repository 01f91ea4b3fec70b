//! How identifiers travel from the analyser's proposals into the executor's SQL: always quoted,
//! never interpolated as written. One place, so the two sides cannot disagree.

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// `identifier` as a quoted SQL identifier: `"` doubled inside, the whole wrapped in `"`.
pub fn quote_ident(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Whether `identifier` can name a PostgreSQL object as it is: not empty, at most 63 bytes, no
/// NUL (which no quoting can carry).
pub fn valid_identifier(identifier: &str) -> bool {
    !identifier.is_empty() && identifier.len() <= MAX_IDENTIFIER_BYTES && !identifier.contains('\0')
}

/// A function an expression index applies to its column: the case-insensitive lookups the
/// advisor proposes (`lower(email) = lower($1)`). A closed list, so the executor writes an
/// expression it knows, never SQL text carried by a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexFunction {
    Lower,
    Upper,
}

impl IndexFunction {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexFunction::Lower => "lower",
            IndexFunction::Upper => "upper",
        }
    }
}

/// One key of an index definition: `"col"`, `lower("col")`, each with ` DESC` when descending.
pub fn index_key(column: &str, function: Option<IndexFunction>, descending: bool) -> String {
    let key = match function {
        Some(f) => format!("{}({})", f.as_str(), quote_ident(column)),
        None => quote_ident(column),
    };
    if descending {
        format!("{key} DESC")
    } else {
        key
    }
}

/// ` INCLUDE ("a", "b")` after an index's keys, or nothing when it includes no column.
pub fn include_clause(columns: &[String]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!(" INCLUDE ({})", quoted.join(", "))
}

/// FNV-1a of `text`: a stable short fingerprint (the same on every run and platform) for names
/// and ids derived from identifiers.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_and_included_columns_are_quoted() {
        assert_eq!(
            index_key("Email", Some(IndexFunction::Lower), false),
            r#"lower("Email")"#
        );
        assert_eq!(index_key("at", None, true), r#""at" DESC"#);
        assert_eq!(include_clause(&[]), "");
        assert_eq!(
            include_clause(&["a\"b".into(), "c".into()]),
            r#" INCLUDE ("a""b", "c")"#
        );
    }

    #[test]
    fn quotes_are_doubled_and_everything_is_wrapped() {
        assert_eq!(quote_ident("posts"), "\"posts\"");
        assert_eq!(quote_ident("Order \"Items\""), "\"Order \"\"Items\"\"\"");
        assert_eq!(qualified("Sales Data", "x"), "\"Sales Data\".\"x\"");
        assert!(valid_identifier("Order Items"));
        assert!(!valid_identifier(""));
        assert!(!valid_identifier(&"a".repeat(64)));
        assert!(!valid_identifier("a\0b"));
    }

    use proptest::prelude::*;

    /// PostgreSQL's lexer on a delimited identifier (scan.l: `"`, then `[^"]+` or `""`, then `"`):
    /// the name it denotes and the text after its closing quote.
    fn lex_quoted(sql: &str) -> Option<(String, &str)> {
        let mut rest = sql.strip_prefix('"')?;
        let mut name = String::new();
        loop {
            let end = rest.find('"')?;
            name.push_str(&rest[..end]);
            rest = &rest[end + 1..];
            match rest.strip_prefix('"') {
                Some(after) => {
                    name.push('"');
                    rest = after;
                }
                None => return Some((name, rest)),
            }
        }
    }

    /// Characters that have broken quoting elsewhere, among any others.
    fn awkward_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => any::<char>(),
            2 => prop::sample::select(vec![
                '"', '\\', '\'', ' ', '\0', '.', ';', '-', '\n', '$', 'é', '€', '\u{1d11e}',
            ]),
        ]
    }

    /// Names of any length up to well past PostgreSQL's 63-byte limit, many within a few bytes
    /// of it, and now and then far beyond it.
    fn awkward_name() -> impl Strategy<Value = String> {
        let near_the_limit = prop_oneof![8 => Just('a'), 1 => Just('\u{e9}'), 1 => Just('"')];
        prop_oneof![
            6 => prop::collection::vec(awkward_char(), 0..80),
            3 => prop::collection::vec(near_the_limit, 58..66),
            1 => prop::collection::vec(awkward_char(), 0..5000),
        ]
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_quoted_identifier_reads_back_as_the_name_and_ends_where_it_should(
            name in awkward_name(),
            separator in prop::sample::select(vec![' ', '.', ',', '(', ')', ';', '\n']),
            rest in awkward_name(),
        ) {
            // What follows an identifier in our statements (never a quote, which would be read as
            // a doubled one), then anything: the injection attempt.
            let after = format!("{separator}{rest}");
            let sql = format!("{}{after}", quote_ident(&name));
            prop_assert_eq!(lex_quoted(&sql), Some((name, after.as_str())));
        }

        #[test]
        fn a_qualified_name_is_exactly_two_identifiers_joined_by_a_dot(
            schema in awkward_name(),
            name in awkward_name(),
        ) {
            let sql = qualified(&schema, &name);
            let (first, rest) = lex_quoted(&sql).expect("schema");
            prop_assert_eq!(first, schema);
            let rest = rest.strip_prefix('.').expect("one dot between the two");
            prop_assert_eq!(lex_quoted(rest), Some((name, "")));
        }

        #[test]
        fn only_names_postgresql_keeps_as_written_are_valid(name in awkward_name()) {
            let keeps = !name.is_empty() && name.len() <= MAX_IDENTIFIER_BYTES && !name.contains('\0');
            prop_assert_eq!(valid_identifier(&name), keeps, "{:?}", name);
        }
    }
}
