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
    fn quotes_are_doubled_and_everything_is_wrapped() {
        assert_eq!(quote_ident("posts"), "\"posts\"");
        assert_eq!(quote_ident("Order \"Items\""), "\"Order \"\"Items\"\"\"");
        assert_eq!(qualified("Sales Data", "x"), "\"Sales Data\".\"x\"");
        assert!(valid_identifier("Order Items"));
        assert!(!valid_identifier(""));
        assert!(!valid_identifier(&"a".repeat(64)));
        assert!(!valid_identifier("a\0b"));
    }
}
