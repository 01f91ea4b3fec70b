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

/// A constant an application's statement always compares a column with (`status = 'pending'`),
/// as a partial index's predicate holds it. A closed set of kinds, each written by
/// [`SqlConstant::literal`] and read back only by [`SqlConstant::parse_literal`], so a predicate
/// the executor writes is never SQL text carried by a detection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum SqlConstant {
    /// A string, without backslashes (whose meaning depends on `standard_conforming_strings`)
    /// and without NUL (which PostgreSQL text cannot hold).
    Text(String),
    Integer(i64),
    /// A decimal number as written (`-1.5`, `2e3`), checked by [`is_number`].
    Number(String),
    Boolean(bool),
}

/// Longest text constant carried: application constants are short words.
pub const MAX_CONSTANT_CHARS: usize = 200;

impl SqlConstant {
    /// A text constant, or `None` when it cannot be carried safely (see [`SqlConstant::Text`]).
    pub fn text(value: &str) -> Option<Self> {
        (value.chars().count() <= MAX_CONSTANT_CHARS && !value.contains(['\\', '\0']))
            .then(|| Self::Text(value.to_owned()))
    }

    /// A number as PostgreSQL's parser wrote it, or `None` when it is not a plain decimal.
    pub fn number(text: &str) -> Option<Self> {
        if let Ok(integer) = text.parse::<i64>() {
            return Some(Self::Integer(integer));
        }
        is_number(text).then(|| Self::Number(text.to_owned()))
    }

    /// Whether the constant is well formed (a deserialised one may not be).
    pub fn is_valid(&self) -> bool {
        match self {
            Self::Text(value) => Self::text(value).is_some(),
            Self::Number(text) => is_number(text),
            Self::Integer(_) | Self::Boolean(_) => true,
        }
    }

    /// The constant as a SQL literal: `'it''s'`, `42`, `-1.5`, `true`.
    pub fn literal(&self) -> String {
        match self {
            Self::Text(value) => format!("'{}'", value.replace('\'', "''")),
            Self::Integer(value) => value.to_string(),
            Self::Number(text) => text.clone(),
            Self::Boolean(value) => value.to_string(),
        }
    }

    /// The inverse of [`SqlConstant::literal`], refusing anything else.
    pub fn parse_literal(literal: &str) -> Option<Self> {
        match literal {
            "true" => return Some(Self::Boolean(true)),
            "false" => return Some(Self::Boolean(false)),
            _ => {}
        }
        if let Some(inner) = literal
            .strip_prefix('\'')
            .and_then(|rest| rest.strip_suffix('\''))
        {
            // Inside, a quote only ever comes doubled.
            if inner.replace("''", "").contains('\'') {
                return None;
            }
            return Self::text(&inner.replace("''", "'"));
        }
        Self::number(literal)
    }
}

/// `-?digits[.digits][e[+-]digits]`, or starting with the point: a numeric literal and nothing
/// else.
pub fn is_number(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (digits(whole) || whole.is_empty())
                && (digits(fraction) || fraction.is_empty())
                && !(whole.is_empty() && fraction.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A partial index's predicate: one column equal to one constant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IndexPredicate {
    pub column: String,
    pub value: SqlConstant,
}

impl IndexPredicate {
    /// `"column" = literal`, the column quoted.
    pub fn condition(&self) -> String {
        format!("{} = {}", quote_ident(&self.column), self.value.literal())
    }
}

/// ` WHERE "column" = literal` after an index's keys and included columns, or nothing.
pub fn where_clause(predicate: Option<&IndexPredicate>) -> String {
    predicate.map_or_else(String::new, |p| format!(" WHERE {}", p.condition()))
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
    fn constants_read_back_only_from_their_own_literals() {
        for constant in [
            SqlConstant::Text("pending".into()),
            SqlConstant::Text("it's".into()),
            SqlConstant::Text(String::new()),
            SqlConstant::Integer(-42),
            SqlConstant::Number("1.50".into()),
            SqlConstant::Number("2e-3".into()),
            SqlConstant::Boolean(false),
        ] {
            assert!(constant.is_valid(), "{constant:?}");
            assert_eq!(
                SqlConstant::parse_literal(&constant.literal()),
                Some(constant.clone())
            );
        }
        assert_eq!(SqlConstant::Text("it's".into()).literal(), "'it''s'");
        for refused in [
            "'a' OR 1=1 --'",
            "'unterminated",
            "'back\\slash'",
            "1; DROP TABLE t",
            "E'x'",
            "NULL",
            "1.2.3",
            "--1",
            ".",
            "1e",
            "",
        ] {
            assert_eq!(SqlConstant::parse_literal(refused), None, "{refused}");
        }
        assert_eq!(
            SqlConstant::parse_literal("'a'' OR ''1'"),
            Some(SqlConstant::Text("a' OR '1".into())),
            "doubled quotes are the text's own"
        );
        assert!(SqlConstant::text(&"x".repeat(MAX_CONSTANT_CHARS + 1)).is_none());
        assert!(!SqlConstant::Number("1 OR 1".into()).is_valid());
    }

    #[test]
    fn a_predicate_quotes_its_column_and_writes_its_constant() {
        let predicate = IndexPredicate {
            column: "Status".into(),
            value: SqlConstant::Text("pending".into()),
        };
        assert_eq!(
            where_clause(Some(&predicate)),
            r#" WHERE "Status" = 'pending'"#
        );
        assert_eq!(where_clause(None), "");
        let json = serde_json::to_value(&predicate).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"column": "Status", "value": {"kind": "text", "value": "pending"}})
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
