//! Which indexes could go: pure judgements over the catalog facts `catalog::index_facts` reads,
//! unit-tested below. An index is **unused** when PostgreSQL counted no scan of it over a period
//! at least [`super::Options::unused_after`] long; a **duplicate** when its keys are the leading
//! keys of another valid index on the same table with the same access method and predicate. An
//! index that enforces something (unique, primary key, exclusion, any constraint), identifies rows
//! for logical replication, belongs to a partitioned index, or is not valid is never proposed.

use proto::sql::qualified;

/// One key of an index: a column (by attribute number) or an expression (as PostgreSQL writes
/// it), with its operator class, collation and sort options (`pg_index.indoption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub column: KeyColumn,
    pub operator_class: i64,
    pub collation: i64,
    pub options: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyColumn {
    Attribute(i16),
    Expression(String),
}

/// What the catalog says of one index, enough to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFacts {
    pub index_oid: i64,
    pub table_oid: i64,
    pub schema: String,
    pub table: String,
    pub name: String,
    pub access_method: String,
    pub keys: Vec<Key>,
    /// Attribute numbers of its `INCLUDE` columns.
    pub included: Vec<i16>,
    /// Its `WHERE`, as PostgreSQL writes it; `None` for a full index.
    pub predicate: Option<String>,
    pub unique: bool,
    pub primary: bool,
    pub exclusion: bool,
    /// `pg_constraint.conindid` names it (a unique, primary, exclusion or foreign key constraint).
    pub backs_constraint: bool,
    pub replica_identity: bool,
    /// Attached to an index of a partitioned table: it can only be dropped with its parent.
    pub partition_of_index: bool,
    /// Valid and ready (`indisvalid AND indisready`): a failed concurrent build is neither.
    pub valid: bool,
    /// `pg_stat_user_indexes.idx_scan`: scans since the statistics were last reset.
    pub scans: i64,
}

/// Why an index is never proposed for dropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Primary,
    Unique,
    Exclusion,
    Constraint,
    ReplicaIdentity,
    PartitionOfIndex,
    Invalid,
}

impl Kept {
    /// The reason in words, as the page shows it.
    pub fn describe(self) -> &'static str {
        match self {
            Kept::Primary => "the primary key",
            Kept::Unique => "unique: it enforces uniqueness whether or not queries use it",
            Kept::Exclusion => "an exclusion constraint's index",
            Kept::Constraint => "backs a constraint",
            Kept::ReplicaIdentity => "the replica identity of logical replication",
            Kept::PartitionOfIndex => {
                "part of a partitioned table's index: it goes only with its parent"
            }
            Kept::Invalid => {
                "not valid (a failed or unfinished concurrent build): no query uses it"
            }
        }
    }
}

impl IndexFacts {
    /// Why this index is never proposed, or `None` when it may be.
    pub fn kept_because(&self) -> Option<Kept> {
        if self.primary {
            Some(Kept::Primary)
        } else if self.unique {
            Some(Kept::Unique)
        } else if self.exclusion {
            Some(Kept::Exclusion)
        } else if self.backs_constraint {
            Some(Kept::Constraint)
        } else if self.replica_identity {
            Some(Kept::ReplicaIdentity)
        } else if self.partition_of_index {
            Some(Kept::PartitionOfIndex)
        } else if !self.valid {
            Some(Kept::Invalid)
        } else {
            None
        }
    }

    /// `DROP INDEX CONCURRENTLY "schema"."name";`: no lock that blocks reads or writes.
    pub fn drop_statement(&self) -> String {
        format!(
            "DROP INDEX CONCURRENTLY {};",
            qualified(&self.schema, &self.name)
        )
    }

    /// Every attribute the index holds, keys and included.
    fn holds_attribute(&self, attribute: i16) -> bool {
        self.included.contains(&attribute)
            || self
                .keys
                .iter()
                .any(|k| k.column == KeyColumn::Attribute(attribute))
    }
}

/// Whether `wider` serves every lookup `narrower` serves: same table, same access method, same
/// predicate, `narrower`'s keys the leading keys of `wider`'s (for B-tree; the very same keys for
/// the other methods, whose multicolumn indexes do not serve their leading keys alone as well),
/// each with the same operator class, collation and order, and `narrower`'s included columns
/// held by `wider`. An index identical to another covers it too: [`duplicate_of`] decides which
/// of the two goes.
fn covers(wider: &IndexFacts, narrower: &IndexFacts) -> bool {
    let same_length_needed = narrower.access_method != "btree";
    wider.index_oid != narrower.index_oid
        && wider.table_oid == narrower.table_oid
        && wider.valid
        && wider.access_method == narrower.access_method
        && wider.predicate == narrower.predicate
        && !narrower.keys.is_empty()
        && narrower.keys.len() <= wider.keys.len()
        && (!same_length_needed || narrower.keys.len() == wider.keys.len())
        && wider.keys[..narrower.keys.len()] == narrower.keys[..]
        && narrower.included.iter().all(|&a| wider.holds_attribute(a))
}

/// The index that makes `index` a duplicate, if any: the first (by name) of the indexes in `all`
/// that cover it. Of two that cover each other (the same keys and columns), the one kept is the one
/// that enforces something, else the more scanned, else the older (lower oid): only the other is
/// a duplicate.
pub fn duplicate_of<'a>(index: &IndexFacts, all: &'a [IndexFacts]) -> Option<&'a IndexFacts> {
    if index.kept_because().is_some() {
        return None;
    }
    all.iter()
        .filter(|other| covers(other, index))
        .filter(|other| {
            if !covers(index, other) || other.kept_because().is_some() {
                return true;
            }
            // Each covers the other: drop only the one of lesser standing.
            (other.scans, -other.index_oid) > (index.scans, -index.index_oid)
        })
        .min_by(|a, b| a.name.cmp(&b.name))
}

/// How long index scans have been counted: since `pg_stat_database.stats_reset`, or since the
/// server started when the database's statistics were never reset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// Unix seconds.
    pub since: i64,
    pub now: i64,
}

impl Period {
    pub fn days(&self) -> f64 {
        (self.now - self.since).max(0) as f64 / 86_400.0
    }
}

/// What the scan count says of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Scanned at least once in the period.
    Used,
    /// No scan over a period at least the minimum long.
    Unused,
    /// No scan yet, but the period is shorter than the minimum.
    TooEarly,
}

impl Usage {
    pub fn word(self) -> &'static str {
        match self {
            Usage::Used => "used",
            Usage::Unused => "unused",
            Usage::TooEarly => "too_early",
        }
    }
}

/// `scans` over `period`, judged against `minimum_days`.
pub fn usage(scans: i64, period: Period, minimum_days: f64) -> Usage {
    if scans > 0 {
        Usage::Used
    } else if period.days() >= minimum_days {
        Usage::Unused
    } else {
        Usage::TooEarly
    }
}

/// `definition` (`pg_get_indexdef`) as a statement that builds it again without blocking writes.
pub fn restore_statement(definition: &str) -> String {
    let concurrent = ["CREATE UNIQUE INDEX ", "CREATE INDEX "]
        .iter()
        .find_map(|start| {
            definition
                .strip_prefix(start)
                .map(|rest| format!("{start}CONCURRENTLY {rest}"))
        })
        .unwrap_or_else(|| definition.to_owned());
    format!("{concurrent};")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(attribute: i16) -> Key {
        Key {
            column: KeyColumn::Attribute(attribute),
            operator_class: 1978,
            collation: 0,
            options: 0,
        }
    }

    fn index(oid: i64, name: &str, keys: &[i16]) -> IndexFacts {
        IndexFacts {
            index_oid: oid,
            table_oid: 1,
            schema: "public".into(),
            table: "posts".into(),
            name: name.into(),
            access_method: "btree".into(),
            keys: keys.iter().map(|&a| key(a)).collect(),
            included: vec![],
            predicate: None,
            unique: false,
            primary: false,
            exclusion: false,
            backs_constraint: false,
            replica_identity: false,
            partition_of_index: false,
            valid: true,
            scans: 0,
        }
    }

    fn duplicate_name(index: &IndexFacts, all: &[IndexFacts]) -> Option<String> {
        duplicate_of(index, all).map(|i| i.name.clone())
    }

    #[test]
    fn a_left_prefix_of_another_btree_is_a_duplicate_and_not_the_other_way() {
        let narrow = index(10, "by_user", &[2]);
        let wide = index(11, "by_user_created", &[2, 5]);
        let other_order = index(12, "by_created_user", &[5, 2]);
        let all = [narrow.clone(), wide.clone(), other_order.clone()];
        assert_eq!(
            duplicate_name(&narrow, &all).as_deref(),
            Some("by_user_created")
        );
        assert_eq!(duplicate_name(&wide, &all), None);
        assert_eq!(duplicate_name(&other_order, &all), None);
    }

    #[test]
    fn another_table_method_predicate_order_or_operator_class_is_not_a_duplicate() {
        let narrow = index(10, "by_user", &[2]);
        let mut elsewhere = index(11, "other_table", &[2, 5]);
        elsewhere.table_oid = 2;
        let mut hash = index(12, "hash", &[2, 5]);
        hash.access_method = "hash".into();
        let mut partial = index(13, "partial", &[2, 5]);
        partial.predicate = Some("(deleted_at IS NULL)".into());
        let mut descending = index(14, "descending", &[2, 5]);
        descending.keys[0].options = 3;
        let mut pattern_ops = index(15, "pattern_ops", &[2, 5]);
        pattern_ops.keys[0].operator_class = 10_044;
        let mut invalid = index(16, "invalid", &[2, 5]);
        invalid.valid = false;
        let all = [
            narrow.clone(),
            elsewhere,
            hash,
            partial,
            descending,
            pattern_ops,
            invalid,
        ];
        assert_eq!(duplicate_name(&narrow, &all), None);
    }

    #[test]
    fn other_access_methods_need_the_very_same_keys() {
        let mut narrow = index(10, "gin_a", &[2]);
        narrow.access_method = "gin".into();
        let mut wide = index(11, "gin_ab", &[2, 3]);
        wide.access_method = "gin".into();
        let mut same = index(12, "gin_a_again", &[2]);
        same.access_method = "gin".into();
        let all = [narrow.clone(), wide, same.clone()];
        // The same keys: the newer of two unscanned twins goes.
        assert_eq!(duplicate_name(&narrow, &all), None);
        assert_eq!(duplicate_name(&same, &all).as_deref(), Some("gin_a"));
    }

    #[test]
    fn expressions_must_match_as_written() {
        let mut lower = index(10, "lower_email", &[0]);
        lower.keys[0].column = KeyColumn::Expression("lower(email)".into());
        let mut lower_id = index(11, "lower_email_id", &[0, 1]);
        lower_id.keys[0].column = KeyColumn::Expression("lower(email)".into());
        let mut upper_id = index(12, "upper_email_id", &[0, 1]);
        upper_id.keys[0].column = KeyColumn::Expression("upper(email)".into());
        let all = [lower.clone(), lower_id, upper_id];
        assert_eq!(
            duplicate_name(&lower, &all).as_deref(),
            Some("lower_email_id")
        );
    }

    #[test]
    fn included_columns_must_be_held_by_the_wider_index() {
        let mut covering = index(10, "by_user_with_title", &[2]);
        covering.included = vec![3];
        let wide = index(11, "by_user_created", &[2, 5]);
        let mut wide_with_title = index(12, "by_user_created_title", &[2, 5]);
        wide_with_title.included = vec![3];
        assert_eq!(
            duplicate_name(&covering, &[covering.clone(), wide.clone()]),
            None
        );
        assert_eq!(
            duplicate_name(&covering, &[covering.clone(), wide, wide_with_title]).as_deref(),
            Some("by_user_created_title")
        );
    }

    #[test]
    fn indexes_that_enforce_something_are_never_duplicates_but_can_make_others_one() {
        let mut unique = index(10, "unique_user", &[2]);
        unique.unique = true;
        let wide = index(11, "by_user_created", &[2, 5]);
        let mut primary = index(12, "posts_pkey", &[1]);
        primary.primary = true;
        primary.unique = true;
        primary.backs_constraint = true;
        let plain_id = index(13, "by_id", &[1]);
        let all = [unique.clone(), wide, primary.clone(), plain_id.clone()];
        assert_eq!(duplicate_name(&unique, &all), None, "a unique index stays");
        assert_eq!(duplicate_name(&primary, &all), None);
        assert_eq!(
            duplicate_name(&plain_id, &all).as_deref(),
            Some("posts_pkey")
        );
        assert_eq!(unique.kept_because(), Some(Kept::Unique));
        assert_eq!(primary.kept_because(), Some(Kept::Primary));
    }

    #[test]
    fn of_two_identical_indexes_the_more_scanned_stays() {
        let mut a = index(10, "a", &[2]);
        let mut b = index(11, "b", &[2]);
        a.scans = 5;
        let all = [a.clone(), b.clone()];
        assert_eq!(duplicate_name(&a, &all), None);
        assert_eq!(duplicate_name(&b, &all).as_deref(), Some("a"));
        b.scans = 6;
        let all = [a.clone(), b.clone()];
        assert_eq!(duplicate_name(&a, &all).as_deref(), Some("b"));
        assert_eq!(duplicate_name(&b, &all), None);
    }

    #[test]
    fn unused_needs_the_minimum_period_of_counting() {
        let day = 86_400;
        let two_days = Period {
            since: 0,
            now: 2 * day,
        };
        let ten_days = Period {
            since: 0,
            now: 10 * day,
        };
        assert_eq!(usage(0, two_days, 7.0), Usage::TooEarly);
        assert_eq!(usage(0, ten_days, 7.0), Usage::Unused);
        assert_eq!(usage(1, two_days, 7.0), Usage::Used);
        assert_eq!(usage(0, Period { since: 5, now: 0 }, 7.0), Usage::TooEarly);
    }

    #[test]
    fn statements_quote_identifiers_and_rebuild_concurrently() {
        let mut odd = index(10, "by \"user\"", &[2]);
        odd.schema = "Sales Data".into();
        assert_eq!(
            odd.drop_statement(),
            r#"DROP INDEX CONCURRENTLY "Sales Data"."by ""user""";"#
        );
        assert_eq!(
            restore_statement("CREATE INDEX by_user ON public.posts USING btree (user_id)"),
            "CREATE INDEX CONCURRENTLY by_user ON public.posts USING btree (user_id);"
        );
        assert_eq!(
            restore_statement("CREATE UNIQUE INDEX u ON public.t USING btree (a)"),
            "CREATE UNIQUE INDEX CONCURRENTLY u ON public.t USING btree (a);"
        );
    }
}
