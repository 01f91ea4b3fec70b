//! Removes literal values from live statement text (`pg_stat_activity.query` carries them), so
//! customer data does not travel into detections, the dashboard or webhooks. pg_stat_statements
//! texts are already normalised and need no redaction.
//!
//! Text that parses is normalised by PostgreSQL's own parser (`pg_query::normalize`): every
//! constant becomes a parameter, `$1`, `$2`, … after any the statement already had. Text that
//! does not parse — PostgreSQL keeps only `track_activity_query_size` bytes of it and the
//! collector reads at most a few thousand characters, so a cut can fall inside a literal, and
//! some texts are not SQL (`<insufficient privilege>`) — goes through a scanner that replaces
//! strings with `'?'` and numbers with `?`, up to the end of the text when a literal is left
//! open.

/// The statement with every string, dollar-quoted and numeric literal replaced.
pub fn redact(sql: &str) -> String {
    pg_query::normalize(sql).unwrap_or_else(|_| scan(sql))
}

/// The scanner, for text PostgreSQL's parser refuses (cut short, or not SQL).
fn scan(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                i = skip_quoted(&chars, i + 1, '\'');
                out.push_str("'?'");
            }
            '"' => {
                let end = skip_quoted(&chars, i + 1, '"');
                out.extend(&chars[i..end]);
                i = end;
            }
            '$' if dollar_tag(&chars, i).is_some() => {
                let tag = dollar_tag(&chars, i).unwrap_or_default();
                let body = i + tag.len();
                i = find(&chars, body, &tag).map_or(chars.len(), |end| end + tag.len());
                out.push_str("'?'");
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            c if c.is_ascii_digit() && !is_word_char(i.checked_sub(1).map(|p| chars[p])) => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push('?');
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// Index just past the closing quote (a doubled quote is an escaped one).
fn skip_quoted(chars: &[char], mut i: usize, quote: char) -> usize {
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        if chars[i] == '\\' && quote == '\'' {
            i += 2;
            continue;
        }
        i += 1;
    }
    chars.len()
}

/// `$tag$` or `$$` starting at `i`, but not a parameter like `$1`.
fn dollar_tag(chars: &[char], i: usize) -> Option<String> {
    let mut j = i + 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        if j == i + 1 && chars[j].is_ascii_digit() {
            return None;
        }
        j += 1;
    }
    (chars.get(j) == Some(&'$')).then(|| chars[i..=j].iter().collect())
}

fn find(chars: &[char], from: usize, tag: &str) -> Option<usize> {
    let tag: Vec<char> = tag.chars().collect();
    (from..chars.len().saturating_sub(tag.len() - 1)).find(|&k| chars[k..k + tag.len()] == tag[..])
}

#[cfg(test)]
mod tests {
    use super::{redact, scan};

    #[test]
    fn text_that_parses_is_normalised_by_postgresql_s_parser() {
        assert_eq!(
            redact("SELECT * FROM users WHERE email = 'a@b.com' AND id = 42"),
            "SELECT * FROM users WHERE email = $1 AND id = $2"
        );
        assert_eq!(
            redact("UPDATE t SET x = 'it''s' WHERE y > 3.5"),
            "UPDATE t SET x = $1 WHERE y > $2"
        );
        // Constants the scanner cannot tell from names: a typed literal, an escape string, a
        // bit string, a negative number.
        let normalised =
            redact("SELECT date '2024-01-02', E'se\\'cret', B'1010', -7 FROM t WHERE a = $1");
        assert_eq!(normalised, "SELECT date $2, $3, $4, $5 FROM t WHERE a = $1");
    }

    #[test]
    fn identifiers_parameters_and_names_with_digits_are_kept() {
        assert_eq!(
            redact(r#"SELECT "col1", t2.c3 FROM "Tab 9" t2 WHERE a = $1"#),
            r#"SELECT "col1", t2.c3 FROM "Tab 9" t2 WHERE a = $1"#
        );
    }

    #[test]
    fn dollar_quoted_bodies_are_replaced() {
        assert_eq!(redact("SELECT $$secret$$, $x$more$x$"), "SELECT $1, $2");
    }

    #[test]
    fn text_cut_inside_a_literal_goes_through_the_scanner_and_does_not_leak() {
        // As PostgreSQL keeps it past track_activity_query_size: the string is left open.
        let cut = "SELECT * FROM users WHERE id = 42 AND email = 'someone@exam";
        assert!(
            pg_query::parse(cut, 0).is_err(),
            "the cut text does not parse"
        );
        assert_eq!(
            redact(cut),
            "SELECT * FROM users WHERE id = ? AND email = '?'"
        );
        assert_eq!(redact("SELECT 'secret"), "SELECT '?'");
        assert_eq!(redact("SELECT $tag$secret body"), "SELECT '?'");
        // Not SQL at all: unchanged, nothing to remove.
        assert_eq!(
            redact("<insufficient privilege>"),
            "<insufficient privilege>"
        );
    }

    #[test]
    fn the_scanner_replaces_strings_and_numbers() {
        assert_eq!(
            scan("SELECT * FROM users WHERE email = 'a@b.com' AND id = 42"),
            "SELECT * FROM users WHERE email = '?' AND id = ?"
        );
        assert_eq!(
            scan("UPDATE t SET x = 'it''s' WHERE y > 3.5"),
            "UPDATE t SET x = '?' WHERE y > ?"
        );
        assert_eq!(scan("SELECT $$secret$$, $x$more$x$"), "SELECT '?', '?'");
        assert_eq!(
            scan(r#"SELECT "col1", t2.c3 FROM "Tab 9" t2 WHERE a = $1"#),
            r#"SELECT "col1", t2.c3 FROM "Tab 9" t2 WHERE a = $1"#
        );
    }
}
