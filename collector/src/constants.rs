//! Fixed constants: the literal values an application's statement always uses where
//! pg_stat_statements shows `$n` (`WHERE status = 'pending'`, `now() - interval '1 minute'`,
//! `LIMIT 50`). The advisor needs them for a partial index and to plan a range at its real size;
//! pg_stat_statements keeps none.
//!
//! Each cycle, every client session's latest statement (`pg_stats::activity::QuerySample`) is matched to
//! its pg_stat_statements entry by `query_id`. PostgreSQL's own normaliser (`pg_query::normalize`,
//! the algorithm pg_stat_statements uses) must turn the sample into exactly the entry's text, or
//! the sample is not used; then the two token streams are aligned, each new `$n` against the
//! constant it replaced. A value is reported only after [`MIN_SAMPLES`] separate executions all
//! used it; one execution with another value marks that parameter as varying for as long as the
//! statement is tracked. So user data (an e-mail, an id) never leaves the collector; only values
//! written into the application's SQL do.

use std::collections::{BTreeMap, HashMap};

use pg_query::protobuf::{ScanToken, Token};
use proto::metrics::{FixedConstant, StatementConstants};
use proto::sql::SqlConstant;

use crate::pg_stats::{QuerySample, StatementCounters};

/// Separate executions that must agree before a constant is reported.
pub const MIN_SAMPLES: u32 = 3;
/// Statements tracked per database; the least recently sampled is forgotten first.
pub const MAX_STATEMENTS: usize = 500;
/// New executions parsed per database per cycle (each is normalised and scanned twice): a
/// server with thousands of sessions costs the collector a bounded time, and is sampled over
/// several cycles instead.
pub const MAX_PARSED_PER_CYCLE: usize = 200;

/// What one constant of a sample was: a value the advisor can carry, or one it cannot (a bit
/// string, an escape string), which counts as varying.
type Sampled = Option<SqlConstant>;

/// The constants of `sample` by the parameter number pg_stat_statements gave each in
/// `normalised` (its text for the same `query_id`); `None` when the sample is not that text with
/// constants in place of those parameters (cut short, another spelling, not SQL).
pub fn constants_of(sample: &str, normalised: &str) -> Option<Vec<(i32, Sampled)>> {
    if pg_query::normalize(sample).ok()?.trim() != normalised.trim() {
        return None;
    }
    let significant = |sql: &str| -> Option<Vec<ScanToken>> {
        Some(
            pg_query::scan_tokens(sql)
                .ok()?
                .into_iter()
                .filter(|t| !matches!(kind(t), Token::SqlComment | Token::CComment))
                .collect(),
        )
    };
    let (ours, theirs) = (significant(sample)?, significant(normalised)?);
    let text =
        |sql: &'_ str, t: &ScanToken| sql.get(t.start as usize..t.end as usize).map(str::to_owned);
    // Parameters the sample already had keep their numbers; constants are numbered after them.
    let base = ours
        .iter()
        .filter(|t| kind(t) == Token::Param)
        .filter_map(|t| parameter_number(&text(sample, t)?))
        .max()
        .unwrap_or(0);
    let mut found = Vec::new();
    let (mut i, mut j) = (0, 0);
    while j < theirs.len() {
        let want = &theirs[j];
        let number = (kind(want) == Token::Param)
            .then(|| parameter_number(&text(normalised, want)?))
            .flatten()
            .filter(|&n| n > base);
        let Some(number) = number else {
            let have = ours.get(i)?;
            if kind(have) != kind(want) || text(sample, have)? != text(normalised, want)? {
                return None;
            }
            i += 1;
            j += 1;
            continue;
        };
        let have = ours.get(i)?;
        let (value, used) = match kind(have) {
            Token::Ascii45 => {
                let digits = ours.get(i + 1)?;
                if !matches!(kind(digits), Token::Iconst | Token::Fconst) {
                    return None;
                }
                let written = format!("-{}", text(sample, digits)?);
                (SqlConstant::number(&written), 2)
            }
            Token::Iconst | Token::Fconst => (SqlConstant::number(&text(sample, have)?), 1),
            // `'it''s'`; an escape (`E'…'`) or dollar-quoted string is not carried.
            Token::Sconst => (
                SqlConstant::parse_literal(&text(sample, have)?)
                    .filter(|c| matches!(c, SqlConstant::Text(_))),
                1,
            ),
            Token::TrueP => (Some(SqlConstant::Boolean(true)), 1),
            Token::FalseP => (Some(SqlConstant::Boolean(false)), 1),
            Token::Bconst | Token::Xconst | Token::Usconst => (None, 1),
            _ => return None,
        };
        found.push((number, value));
        i += used;
        j += 1;
    }
    (i == ours.len()).then_some(found)
}

fn kind(token: &ScanToken) -> Token {
    Token::try_from(token.token).unwrap_or(Token::Nul)
}

fn parameter_number(text: &str) -> Option<i32> {
    text.strip_prefix('$')?.parse().ok()
}

/// Per database: what each statement's parameters were in the executions sampled.
#[derive(Debug, Default)]
pub struct FixedConstants {
    statements: HashMap<i64, Observed>,
    /// Each session's statement start at its last sample, so one execution counts once.
    sampled: HashMap<i32, i64>,
    cycle: u64,
}

#[derive(Debug)]
struct Observed {
    samples: u32,
    parameters: BTreeMap<i32, Seen>,
    last_cycle: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Always(SqlConstant),
    Varies,
}

impl FixedConstants {
    /// Takes one cycle's samples, each against its statement's normalised text.
    pub fn observe(&mut self, samples: &[QuerySample], statements: &[StatementCounters]) {
        self.cycle += 1;
        let texts: HashMap<i64, &str> = statements
            .iter()
            .map(|s| (s.queryid, s.query.as_str()))
            .collect();
        let mut sampled = HashMap::with_capacity(samples.len());
        let mut parsed = 0;
        for sample in samples {
            if self.sampled.get(&sample.pid) == Some(&sample.query_start_us) {
                // The same execution as last cycle (the session has been idle since).
                sampled.insert(sample.pid, sample.query_start_us);
                continue;
            }
            let Some(normalised) = texts.get(&sample.queryid) else {
                continue;
            };
            if parsed == MAX_PARSED_PER_CYCLE {
                continue; // not marked as seen: taken in a later cycle if still there
            }
            parsed += 1;
            sampled.insert(sample.pid, sample.query_start_us);
            let Some(constants) = constants_of(&sample.text, normalised) else {
                continue;
            };
            if !constants.is_empty() {
                self.record(sample.queryid, constants);
            }
        }
        self.sampled = sampled;
        if self.statements.len() > MAX_STATEMENTS {
            let mut by_age: Vec<(u64, i64)> = self
                .statements
                .iter()
                .map(|(id, o)| (o.last_cycle, *id))
                .collect();
            by_age.sort_unstable();
            for (_, id) in &by_age[..self.statements.len() - MAX_STATEMENTS] {
                self.statements.remove(id);
            }
        }
    }

    fn record(&mut self, queryid: i64, constants: Vec<(i32, Sampled)>) {
        let cycle = self.cycle;
        let observed = self.statements.entry(queryid).or_insert_with(|| Observed {
            samples: 0,
            parameters: BTreeMap::new(),
            last_cycle: cycle,
        });
        observed.last_cycle = cycle;
        let same_parameters = observed.samples == 0
            || (observed.parameters.len() == constants.len()
                && constants
                    .iter()
                    .all(|(n, _)| observed.parameters.contains_key(n)));
        observed.samples += 1;
        for (number, value) in constants {
            let seen = observed.parameters.entry(number).or_insert(match &value {
                Some(v) => Seen::Always(v.clone()),
                None => Seen::Varies,
            });
            if !same_parameters
                || value
                    .as_ref()
                    .is_none_or(|v| *seen != Seen::Always(v.clone()))
            {
                *seen = Seen::Varies;
            }
        }
        if !same_parameters {
            for seen in observed.parameters.values_mut() {
                *seen = Seen::Varies;
            }
        }
    }

    /// Every statement sampled, by queryid: once [`MIN_SAMPLES`] executions were sampled it is
    /// settled, with the constants they all used; before, it is reported as still being learnt.
    pub fn report(&self) -> Vec<StatementConstants> {
        let mut report: Vec<StatementConstants> = self
            .statements
            .iter()
            .map(|(&queryid, observed)| {
                let settled = observed.samples >= MIN_SAMPLES;
                let constants = observed
                    .parameters
                    .iter()
                    .filter(|_| settled)
                    .filter_map(|(&parameter, seen)| match seen {
                        Seen::Always(value) => Some(FixedConstant {
                            parameter,
                            literal: value.literal(),
                        }),
                        Seen::Varies => None,
                    })
                    .collect();
                StatementConstants {
                    queryid,
                    constants,
                    samples: observed.samples.min(i32::MAX as u32) as i32,
                    settled,
                    constant_parameters: observed.parameters.keys().copied().collect(),
                }
            })
            .collect();
        report.sort_by_key(|s| s.queryid);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Sampled {
        SqlConstant::text(s)
    }

    #[test]
    fn each_constant_is_matched_to_the_parameter_pg_stat_statements_gave_it() {
        assert_eq!(
            constants_of(
                "SELECT id FROM orders WHERE status = 'pending' ORDER BY created_at LIMIT 50",
                "SELECT id FROM orders WHERE status = $1 ORDER BY created_at LIMIT $2",
            ),
            Some(vec![(1, text("pending")), (2, SqlConstant::number("50"))])
        );
        assert_eq!(
            constants_of(
                "SELECT kind, count(*) FROM events WHERE created_at > now() - interval '1 minute' GROUP BY kind",
                "SELECT kind, count(*) FROM events WHERE created_at > now() - interval $1 GROUP BY kind",
            ),
            Some(vec![(1, text("1 minute"))])
        );
    }

    #[test]
    fn parameters_the_client_bound_keep_their_numbers_and_constants_follow() {
        assert_eq!(
            constants_of(
                "SELECT * FROM t WHERE a = $1 AND b = -2.5 AND c = true AND d = 'it''s'",
                "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d = $4",
            ),
            Some(vec![
                (2, SqlConstant::number("-2.5")),
                (3, Some(SqlConstant::Boolean(true))),
                (4, text("it's")),
            ])
        );
        assert_eq!(
            constants_of(
                "SELECT * FROM t WHERE a = $1",
                "SELECT * FROM t WHERE a = $1"
            ),
            Some(vec![]),
            "nothing to learn from a statement with bound parameters only"
        );
    }

    #[test]
    fn a_sample_that_is_not_the_statements_text_is_not_used() {
        let normalised = "SELECT * FROM t WHERE a = $1";
        for sample in [
            "SELECT * FROM t WHERE a = 1 AND b = 2",
            "SELECT *  FROM t WHERE a = 1",
            "SELECT * FROM t WHERE a = 'cut short",
            "<insufficient privilege>",
        ] {
            assert_eq!(constants_of(sample, normalised), None, "{sample}");
        }
        assert_eq!(
            constants_of(
                "SELECT * FROM t WHERE a = E'x\\ny'",
                "SELECT * FROM t WHERE a = $1"
            ),
            Some(vec![(1, None)]),
            "an escape string is a constant the advisor does not carry"
        );
    }

    fn sample(pid: i32, start: i64, sql: &str) -> QuerySample {
        QuerySample {
            pid,
            queryid: 7,
            query_start_us: start,
            text: sql.to_owned(),
        }
    }

    fn statement() -> Vec<StatementCounters> {
        vec![StatementCounters {
            queryid: 7,
            query: "SELECT * FROM orders WHERE status = $1 AND customer_id = $2".into(),
            ..Default::default()
        }]
    }

    fn literals(tracker: &FixedConstants) -> Vec<(i32, String)> {
        tracker
            .report()
            .iter()
            .flat_map(|s| s.constants.iter().map(|c| (c.parameter, c.literal.clone())))
            .collect()
    }

    #[test]
    fn a_constant_is_reported_after_three_executions_agree_and_a_varying_one_never() {
        let mut tracker = FixedConstants::default();
        let sql = |customer: i32| {
            format!("SELECT * FROM orders WHERE status = 'pending' AND customer_id = {customer}")
        };
        for cycle in 1..=2 {
            tracker.observe(&[sample(10, cycle, &sql(cycle as i32))], &statement());
        }
        let learning = &tracker.report()[0];
        assert!(
            !learning.settled && learning.constants.is_empty(),
            "two executions are not enough"
        );
        assert_eq!(learning.samples, 2);
        assert_eq!(learning.constant_parameters, [1, 2]);
        // The same execution seen again (the session idle since) does not count.
        tracker.observe(&[sample(10, 2, &sql(2))], &statement());
        assert_eq!(tracker.report()[0].samples, 2);
        tracker.observe(&[sample(11, 3, &sql(3))], &statement());
        assert_eq!(literals(&tracker), [(1, "'pending'".to_owned())]);
        assert!(tracker.report()[0].settled);
        // One execution with another status: that parameter varies from then on.
        tracker.observe(
            &[sample(
                10,
                4,
                "SELECT * FROM orders WHERE status = 'paid' AND customer_id = 4",
            )],
            &statement(),
        );
        for cycle in 5..=8 {
            tracker.observe(&[sample(10, cycle, &sql(cycle as i32))], &statement());
        }
        assert!(literals(&tracker).is_empty(), "{:?}", tracker.report());
        assert!(tracker.report()[0].settled);
    }

    #[test]
    fn statements_tracked_are_bounded() {
        let mut tracker = FixedConstants::default();
        let statements: Vec<StatementCounters> = (0..MAX_STATEMENTS as i64 + 50)
            .map(|id| StatementCounters {
                queryid: id,
                query: format!("SELECT * FROM t{id} WHERE a = $1"),
                ..Default::default()
            })
            .collect();
        let samples: Vec<QuerySample> = statements
            .iter()
            .map(|s| QuerySample {
                pid: s.queryid as i32,
                queryid: s.queryid,
                query_start_us: 1,
                text: format!("SELECT * FROM t{} WHERE a = 1", s.queryid),
            })
            .collect();
        // Parsed over several cycles, at most MAX_PARSED_PER_CYCLE at a time.
        for _ in 0..samples.len().div_ceil(MAX_PARSED_PER_CYCLE) {
            tracker.observe(&samples, &statements);
        }
        assert_eq!(tracker.statements.len(), MAX_STATEMENTS);
    }

    #[test]
    fn a_cycle_parses_a_bounded_number_of_executions_and_the_rest_later() {
        let mut tracker = FixedConstants::default();
        let samples: Vec<QuerySample> = (0..MAX_PARSED_PER_CYCLE as i32 + 20)
            .map(|pid| {
                sample(
                    pid,
                    1,
                    "SELECT * FROM orders WHERE status = 'new' AND customer_id = 1",
                )
            })
            .collect();
        tracker.observe(&samples, &statement());
        assert_eq!(tracker.report()[0].samples as usize, MAX_PARSED_PER_CYCLE);
        tracker.observe(&samples, &statement());
        assert_eq!(
            tracker.report()[0].samples as usize,
            MAX_PARSED_PER_CYCLE + 20,
            "the executions left over were taken next cycle, none twice"
        );
    }
}
