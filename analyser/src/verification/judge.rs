//! The decision, as a pure function of what was measured: per statement, calls and total time
//! over the cycles before the action (baseline) and after it.
//!
//! * For an index: the statements it was built for must get faster by at least
//!   `improvement_threshold` (call-weighted mean). Another statement on the table that got
//!   slower by more than `regression_tolerance` (and a 0.05 ms noise floor) rolls it back when
//!   its extra database time per second is more than `regression_tolerance` of what the index
//!   saves per second (and at least 1 ms/s), or when several together cost more than it saves;
//!   smaller slowdowns are its write cost (or, for reads, taken off the time saved) and are
//!   named in the reason. Too small a gain is "no effect".
//! * For a configuration change: the database's mean statement latency, the same way.
//! * Nothing is judged on fewer than `min_calls` calls on each side: until the time limit, the
//!   verification waits; at the limit it is "not judged" and the change stays.
//! * The ledger's figures are conservative: time saved (and a write cost) is the change in mean
//!   latency times the *lower* of the call rates before and after, so a closed-loop workload
//!   that calls 100× more once it is faster is credited at the demand seen before the fix.

use std::collections::BTreeMap;

use proto::status::LedgerState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Below this change in mean latency (ms), a difference is noise.
pub const NOISE_FLOOR_MS: f64 = 0.05;
/// Below this much extra database time per second (ms), another statement's slowdown never
/// rolls an index back: a thousandth of one core.
pub const MIN_REGRESSION_MS_PER_SECOND: f64 = 1.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// Calls per day at the demand a figure may count on: the lower of the call rates before and
/// after. A fix that makes a closed-loop workload faster raises its call rate; crediting the
/// saving at the raised rate would count demand that only exists because of the fix.
fn demand_per_day(before: &Load, before_seconds: f64, after: &Load, after_seconds: f64) -> f64 {
    let rate = |load: &Load, seconds: f64| load.calls as f64 / seconds.max(1.0);
    rate(before, before_seconds).min(rate(after, after_seconds)) * SECONDS_PER_DAY
}

/// One statement's calls and time over some cycles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    /// The statement writes the table (INSERT, UPDATE, DELETE).
    #[serde(default)]
    pub writes: bool,
}

impl Load {
    pub fn mean_ms(&self) -> f64 {
        if self.calls > 0 {
            self.total_ms / self.calls as f64
        } else {
            0.0
        }
    }
}

/// Measurements over some cycles, by queryid (as text: JSON object keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub statements: BTreeMap<String, Load>,
    pub seconds: f64,
    pub cycles: u32,
}

impl Figures {
    pub fn add(&mut self, queryid: i64, load: Load) {
        let entry = self.statements.entry(queryid.to_string()).or_default();
        entry.query = load.query;
        entry.writes |= load.writes;
        entry.calls += load.calls;
        entry.total_ms += load.total_ms;
    }

    fn sum(&self, ids: &[String]) -> Load {
        let mut total = Load::default();
        for id in ids {
            if let Some(load) = self.statements.get(id) {
                total.calls += load.calls;
                total.total_ms += load.total_ms;
            }
        }
        total
    }

    fn all(&self) -> Load {
        let ids: Vec<String> = self.statements.keys().cloned().collect();
        self.sum(&ids)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub min_calls: i64,
    pub improvement_threshold: f64,
    pub regression_tolerance: f64,
}

/// A decision with its reason and the ledger's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Kept, rolled back or no effect (never verifying or not judged: those are decided by
    /// the caller, from the time limit).
    pub decision: LedgerState,
    pub reason: String,
    /// Database time saved per day: the drop in mean latency times the lower of the call rates
    /// before and after (never the demand the fix itself created).
    pub time_saved_ms_per_day: f64,
    /// Time added per day to the table's writes, at the same conservative demand.
    pub write_cost_ms_per_day: f64,
    pub after: Value,
}

/// Another statement on the table that is slower since the index exists.
#[derive(Debug, Clone, PartialEq)]
struct Slower {
    queryid: String,
    query: String,
    was_ms: f64,
    now_ms: f64,
    /// The extra database time it takes, per second, at the lower of its call rates.
    extra_ms_per_second: f64,
}

impl Slower {
    fn describe(&self) -> String {
        format!(
            "{:?} (queryid {}) went from {:.2} ms to {:.2} ms (+{:.0} %, {:.1} ms of database time per second)",
            self.query,
            self.queryid,
            self.was_ms,
            self.now_ms,
            (self.now_ms / self.was_ms.max(f64::MIN_POSITIVE) - 1.0) * 100.0,
            self.extra_ms_per_second
        )
    }
}

/// `None` while there are too few calls to judge.
///
/// Another statement's slowdown is weighed in database time per second, against what the
/// index saves: it rolls the index back when it is beyond `regression_tolerance` of its own
/// latency, beyond the noise floor, *and* its extra time is more than `regression_tolerance` of
/// the time the index saves (and at least [`MIN_REGRESSION_MS_PER_SECOND`]). A 0.1 ms slower
/// `UPDATE` under an index that saves a second every second is the index's write cost, not a
/// reason to take it back; a plan that now makes another query cost more than the index saves is.
pub fn judge_index(
    served: &[String],
    before: &Figures,
    after: &Figures,
    rules: Rules,
) -> Option<Verdict> {
    let (b, a) = (before.sum(served), after.sum(served));
    if a.calls < rules.min_calls || b.calls == 0 {
        return None;
    }
    let gain = 1.0 - a.mean_ms() / b.mean_ms().max(f64::MIN_POSITIVE);
    let served_per_second = demand_per_day(&b, before.seconds, &a, after.seconds) / SECONDS_PER_DAY;
    let saved_ms_per_second = (b.mean_ms() - a.mean_ms()) * served_per_second;
    let mut slower = Vec::new();
    let mut write_cost = 0.0;
    let mut read_cost = 0.0;
    for (id, after_load) in &after.statements {
        if served.contains(id) {
            continue;
        }
        let Some(before_load) = before.statements.get(id) else {
            continue;
        };
        if after_load.calls < rules.min_calls || before_load.calls < rules.min_calls {
            continue;
        }
        let delta = after_load.mean_ms() - before_load.mean_ms();
        if delta <= 0.0 {
            continue;
        }
        let per_day = demand_per_day(before_load, before.seconds, after_load, after.seconds);
        if after_load.writes {
            write_cost += delta * per_day;
        } else if delta > NOISE_FLOOR_MS {
            read_cost += delta * per_day;
        }
        if delta > NOISE_FLOOR_MS
            && after_load.mean_ms() > before_load.mean_ms() * (1.0 + rules.regression_tolerance)
        {
            slower.push(Slower {
                queryid: id.clone(),
                query: after_load.query.clone(),
                was_ms: before_load.mean_ms(),
                now_ms: after_load.mean_ms(),
                extra_ms_per_second: delta * per_day / SECONDS_PER_DAY,
            });
        }
    }
    slower.sort_by(|x, y| y.extra_ms_per_second.total_cmp(&x.extra_ms_per_second));
    let bar =
        MIN_REGRESSION_MS_PER_SECOND.max(rules.regression_tolerance * saved_ms_per_second.max(0.0));
    let slower_ms_per_second: f64 = slower.iter().map(|s| s.extra_ms_per_second).sum();
    let figures = json!({
        "served": {"calls": a.calls, "mean_ms": a.mean_ms(), "before_mean_ms": b.mean_ms(), "before_calls": b.calls},
        "saved_ms_per_second": saved_ms_per_second,
        "others_slower_ms_per_second": slower_ms_per_second,
        "statements": after.statements,
        "seconds": after.seconds,
        "cycles": after.cycles,
    });
    let regression = slower
        .iter()
        .find(|s| s.extra_ms_per_second > bar)
        .map(|s| s.describe())
        .or_else(|| {
            (slower.len() > 1 && slower_ms_per_second > bar.max(saved_ms_per_second)).then(|| {
                format!(
                    "{} other statements on the table got slower, {slower_ms_per_second:.1} ms of database time per second in all, more than the {saved_ms_per_second:.1} ms it saves",
                    slower.len()
                )
            })
        });
    let others = match slower.first() {
        Some(worst) => format!(
            "; other statements slower by {slower_ms_per_second:.1} ms per second in all, within the tolerance (the most: {})",
            worst.describe()
        ),
        None => String::new(),
    };
    let (decision, reason) = if let Some(regression) = regression {
        (
            LedgerState::RolledBack,
            format!(
                "another statement on the table got slower: {regression}; the index saves {saved_ms_per_second:.1} ms per second, and a slowdown may cost at most {:.0} % of that (at least {MIN_REGRESSION_MS_PER_SECOND} ms per second)",
                rules.regression_tolerance * 100.0
            ),
        )
    } else if gain >= rules.improvement_threshold {
        (
            LedgerState::Kept,
            format!(
                "the statements it serves went from {:.2} ms to {:.2} ms on average (-{:.0} %) over {} calls{others}",
                b.mean_ms(),
                a.mean_ms(),
                gain * 100.0,
                a.calls
            ),
        )
    } else {
        (
            LedgerState::NoEffect,
            format!(
                "the statements it serves went from {:.2} ms to {:.2} ms: less than the {:.0} % required{others}",
                b.mean_ms(),
                a.mean_ms(),
                rules.improvement_threshold * 100.0
            ),
        )
    };
    Some(Verdict {
        decision,
        reason,
        time_saved_ms_per_day: (saved_ms_per_second * SECONDS_PER_DAY - read_cost).max(0.0),
        write_cost_ms_per_day: write_cost,
        after: figures,
    })
}

/// A configuration change: every statement of the database together.
pub fn judge_config(before: &Figures, after: &Figures, rules: Rules) -> Option<Verdict> {
    let (b, a) = (before.all(), after.all());
    if a.calls < rules.min_calls || b.calls < rules.min_calls {
        return None;
    }
    let change = a.mean_ms() / b.mean_ms().max(f64::MIN_POSITIVE) - 1.0;
    let figures = json!({"mean_ms": a.mean_ms(), "calls": a.calls, "before_mean_ms": b.mean_ms(), "before_calls": b.calls});
    let delta = a.mean_ms() - b.mean_ms();
    let (decision, reason) = if change > rules.regression_tolerance && delta > NOISE_FLOOR_MS {
        (
            LedgerState::RolledBack,
            format!(
                "the database's statements got slower: {:.2} ms to {:.2} ms on average (+{:.0} %)",
                b.mean_ms(),
                a.mean_ms(),
                change * 100.0
            ),
        )
    } else if -change >= rules.improvement_threshold {
        (
            LedgerState::Kept,
            format!(
                "the database's statements went from {:.2} ms to {:.2} ms on average (-{:.0} %)",
                b.mean_ms(),
                a.mean_ms(),
                -change * 100.0
            ),
        )
    } else {
        (
            LedgerState::NoEffect,
            format!(
                "the database's statements went from {:.2} ms to {:.2} ms on average: no meaningful change",
                b.mean_ms(),
                a.mean_ms()
            ),
        )
    };
    let per_day = demand_per_day(&b, before.seconds, &a, after.seconds);
    Some(Verdict {
        decision,
        reason,
        time_saved_ms_per_day: (-delta * per_day).max(0.0),
        write_cost_ms_per_day: 0.0,
        after: figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        min_calls: 50,
        improvement_threshold: 0.1,
        regression_tolerance: 0.1,
    };

    fn figures(entries: &[(i64, i64, f64, bool)], seconds: f64) -> Figures {
        let mut f = Figures {
            seconds,
            ..Default::default()
        };
        for (id, calls, mean, writes) in entries {
            f.add(
                *id,
                Load {
                    query: format!("q{id}"),
                    calls: *calls,
                    total_ms: *calls as f64 * mean,
                    writes: *writes,
                },
            );
        }
        f
    }

    #[test]
    fn a_faster_served_statement_and_no_slower_other_keeps_the_index() {
        let before = figures(&[(1, 100, 20.0, false), (2, 100, 0.10, true)], 10.0);
        let after = figures(&[(1, 300, 0.5, false), (2, 300, 0.104, true)], 10.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::Kept, "{}", v.reason);
        // The calls rose from 10/s to 30/s; the saving counts the 10/s seen before the index:
        // 864,000 calls a day, 19.5 ms saved each.
        assert!((v.time_saved_ms_per_day - 864_000.0 * 19.5).abs() < 1.0);
        // The insert's +0.004 ms is under the noise floor but is still a write cost.
        assert!(v.write_cost_ms_per_day > 0.0);
    }

    #[test]
    fn a_closed_loop_whose_call_rate_rises_100x_is_credited_at_the_demand_before() {
        // A client loop waiting on each statement: 20 ms each before, so 50 calls/s; 0.2 ms
        // after, so 5,000 calls/s over the same 10 s. The same loop, the same demand for work.
        let before = figures(&[(1, 500, 20.0, false), (2, 50, 0.10, true)], 10.0);
        let after = figures(&[(1, 50_000, 0.2, false), (2, 5_000, 0.12, true)], 10.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::Kept, "{}", v.reason);
        // 50 calls/s × 86,400 s × 19.8 ms = 85,536,000 ms a day (23.8 h of database time) —
        // not 5,000 calls/s × 19.8 ms, which would claim 99 s of database time every second.
        let expected = 50.0 * 86_400.0 * 19.8;
        assert!(
            (v.time_saved_ms_per_day - expected).abs() < 1.0,
            "{} ms/day",
            v.time_saved_ms_per_day
        );
        assert!(
            v.time_saved_ms_per_day <= 86_400_000.0 * 1.0,
            "at most a day per day here"
        );
        // The insert's cost is counted at its lower rate too: 5 calls/s × 0.02 ms.
        assert!(
            (v.write_cost_ms_per_day - 5.0 * 86_400.0 * 0.02).abs() < 1.0,
            "{} ms/day",
            v.write_cost_ms_per_day
        );
    }

    #[test]
    fn a_configuration_change_is_credited_at_the_lower_call_rate() {
        let before = figures(&[(1, 1_000, 4.0, false)], 10.0);
        let after = figures(&[(1, 4_000, 1.0, false)], 10.0);
        let v = judge_config(&before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::Kept, "{}", v.reason);
        assert!((v.time_saved_ms_per_day - 100.0 * 86_400.0 * 3.0).abs() < 1.0);
    }

    #[test]
    fn another_statement_slower_beyond_tolerance_rolls_back_naming_it() {
        let before = figures(&[(1, 100, 20.0, false), (2, 100, 0.10, true)], 10.0);
        let after = figures(&[(1, 300, 0.5, false), (2, 300, 5.2, true)], 10.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::RolledBack);
        assert!(
            v.reason.contains("q2") && v.reason.contains("5.20 ms"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn a_write_a_little_slower_under_an_index_that_saves_far_more_is_its_write_cost() {
        // The bench's case: an UPDATE went from 0.07 ms to 0.20 ms (+186 %) at 20 calls/s,
        // 2.6 ms of database time per second, under an index saving 10 calls/s × 19.5 ms.
        let before = figures(&[(1, 100, 20.0, false), (2, 200, 0.07, true)], 10.0);
        let after = figures(&[(1, 100, 0.5, false), (2, 200, 0.20, true)], 10.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::Kept, "{}", v.reason);
        assert!(
            v.reason.contains("q2") && v.reason.contains("within the tolerance"),
            "{}",
            v.reason
        );
        assert!((v.write_cost_ms_per_day - 20.0 * 0.13 * 86_400.0).abs() < 1.0);
        assert!((v.after["saved_ms_per_second"].as_f64().unwrap() - 195.0).abs() < 1e-6);
    }

    #[test]
    fn a_read_the_new_index_made_slower_rolls_back_when_it_costs_a_tenth_of_the_saving() {
        // Saves 10 calls/s × 9 ms = 90 ms/s. Another read went from 2 ms to 4 ms at 5 calls/s:
        // 10 ms/s, more than 9 ms/s (10 % of the saving): rolled back, naming it.
        let before = figures(&[(1, 100, 10.0, false), (3, 50, 2.0, false)], 10.0);
        let after = figures(&[(1, 100, 1.0, false), (3, 50, 4.0, false)], 10.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::RolledBack, "{}", v.reason);
        assert!(
            v.reason.contains("q3") && v.reason.contains("10.0 ms of database time"),
            "{}",
            v.reason
        );
        // Over 25 s the index saves 4 calls/s × 9 ms = 36 ms/s; the other read, 2 ms to 3 ms
        // at 2 calls/s, costs 2 ms/s (under 3.6): the index stays, and the slowdown is taken
        // off the time it is credited with.
        let before = figures(&[(1, 100, 10.0, false), (3, 50, 2.0, false)], 25.0);
        let after = figures(&[(1, 100, 1.0, false), (3, 50, 3.0, false)], 25.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::Kept, "{}", v.reason);
        assert!(
            (v.time_saved_ms_per_day - (36.0 - 2.0) * 86_400.0).abs() < 1.0,
            "{}",
            v.time_saved_ms_per_day
        );
    }

    #[test]
    fn a_slowdown_under_a_thousandth_of_a_core_never_rolls_back() {
        // The index saves little (0.5 ms/s); another read got 50 % slower, 0.8 ms/s in all.
        let before = figures(&[(1, 100, 1.0, false), (3, 100, 0.4, false)], 100.0);
        let after = figures(&[(1, 100, 0.5, false), (3, 100, 1.2, false)], 100.0);
        let v = judge_index(&["1".into()], &before, &after, RULES).unwrap();
        assert_eq!(v.decision, LedgerState::Kept, "{}", v.reason);
    }

    #[test]
    fn several_small_slowdowns_that_together_cost_more_than_the_saving_roll_back() {
        // Saves 10 calls/s × 1 ms = 10 ms/s; three reads each cost 0.9 ms/s more (under the
        // 1 ms/s floor each), 2.7 ms/s in all: less than the saving, kept. Ten of them, 9 ms/s,
        // still less; twelve, 10.8 ms/s, more than it saves: rolled back.
        let judge = |others: i64| {
            let mut b = vec![(1, 1_000, 2.0, false)];
            let mut a = vec![(1, 1_000, 1.0, false)];
            for id in 0..others {
                b.push((10 + id, 90, 1.0, false));
                a.push((10 + id, 90, 2.0, false));
            }
            judge_index(
                &["1".into()],
                &figures(&b, 100.0),
                &figures(&a, 100.0),
                RULES,
            )
            .unwrap()
        };
        assert_eq!(judge(3).decision, LedgerState::Kept);
        assert_eq!(judge(10).decision, LedgerState::Kept);
        let v = judge(12);
        assert_eq!(v.decision, LedgerState::RolledBack, "{}", v.reason);
        assert!(v.reason.contains("12 other statements"), "{}", v.reason);
    }

    #[test]
    fn too_small_a_gain_is_no_effect_and_too_few_calls_is_no_decision() {
        let before = figures(&[(1, 100, 10.0, false)], 10.0);
        let small = figures(&[(1, 100, 9.5, false)], 10.0);
        assert_eq!(
            judge_index(&["1".into()], &before, &small, RULES)
                .unwrap()
                .decision,
            LedgerState::NoEffect
        );
        let few = figures(&[(1, 49, 1.0, false)], 10.0);
        assert_eq!(judge_index(&["1".into()], &before, &few, RULES), None);
        // A slower statement with too few calls is not counted as a regression.
        let after = figures(&[(1, 100, 1.0, false), (2, 10, 50.0, false)], 10.0);
        let before = figures(&[(1, 100, 10.0, false), (2, 10, 1.0, false)], 10.0);
        assert_eq!(
            judge_index(&["1".into()], &before, &after, RULES)
                .unwrap()
                .decision,
            LedgerState::Kept
        );
    }

    #[test]
    fn configuration_changes_are_judged_on_the_whole_database() {
        let before = figures(&[(1, 100, 10.0, false), (2, 100, 2.0, false)], 10.0);
        let worse = figures(&[(1, 100, 14.0, false), (2, 100, 2.0, false)], 10.0);
        assert_eq!(
            judge_config(&before, &worse, RULES).unwrap().decision,
            LedgerState::RolledBack
        );
        let better = figures(&[(1, 100, 5.0, false), (2, 100, 2.0, false)], 10.0);
        assert_eq!(
            judge_config(&before, &better, RULES).unwrap().decision,
            LedgerState::Kept
        );
    }
}
