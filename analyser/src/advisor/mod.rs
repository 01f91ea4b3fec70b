//! The index advisor: which index would serve the statements that scan a table. Statements are
//! parsed with PostgreSQL's own parser (`pg_query`), never matched with regexes.
//!
//! So far: `statement` finds, per table a statement reads, the columns it filters on by equality
//! or IN, by range, joins on and sorts by (with direction and LIMIT); `candidates` turns that into
//! index column lists a DBA would try (equality columns first, then the sort columns in the sort's
//! direction so `ORDER BY … LIMIT` can stop early, else one range column); `coverage` tells when
//! an existing valid b-tree index already serves a candidate. Still to come: skipping tiny and
//! guarding write-heavy tables, the HypoPG cost check, and the missing-index detector itself.

pub mod candidates;
pub mod coverage;
pub mod statement;
