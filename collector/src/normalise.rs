//! Health scores (0..1) as the original computed them (spec 5.3), from windowed values: a
//! component counts only when its inputs were measured; the overall score is their mean.

/// What the scores are computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs {
    /// Client connections of every state, and the connections usable by clients.
    pub connections: Option<(i32, i32)>,
    pub p95_latency_ms: Option<f64>,
    /// Sequential scans per second over the interval (a rate, so the score does not change with
    /// the collection interval).
    pub seq_scans_per_second: Option<f64>,
    pub cache_hit_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub health: f64,
    pub connection: f64,
    pub query: f64,
    pub storage: f64,
    pub cache: f64,
}

pub fn scores(inputs: Inputs) -> Scores {
    let mut counted = Vec::new();
    let connection = match inputs.connections {
        Some((used, usable)) if usable > 0 => {
            let score = (1.0 - used as f64 / usable as f64).clamp(0.0, 1.0);
            counted.push(score);
            score
        }
        _ => 1.0,
    };
    let query = if inputs.p95_latency_ms.is_some() || inputs.seq_scans_per_second.is_some() {
        let mut score: f64 = 1.0;
        if let Some(latency) = inputs.p95_latency_ms.filter(|l| *l > 0.0) {
            score = (1.0 - latency / 1000.0).max(0.0);
        }
        // The original took 0.1 off per 100 scans of its 10 s window: per 10 scans a second.
        if let Some(rate) = inputs.seq_scans_per_second {
            score -= ((rate / 10.0) * 0.1).min(0.5);
        }
        let score = score.max(0.0);
        counted.push(score);
        score
    } else {
        1.0
    };
    let cache = match inputs.cache_hit_rate {
        Some(rate) => {
            counted.push(rate);
            rate
        }
        None => 1.0,
    };
    let health = if counted.is_empty() {
        1.0
    } else {
        counted.iter().sum::<f64>() / counted.len() as f64
    };
    Scores {
        health,
        connection,
        query,
        // Neither PostgreSQL nor the original knows the volume's capacity.
        storage: 1.0,
        cache,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_measured_is_healthy() {
        assert_eq!(scores(Inputs::default()).health, 1.0);
    }

    #[test]
    fn components_average_over_what_was_measured() {
        let s = scores(Inputs {
            connections: Some((80, 100)),
            cache_hit_rate: Some(0.9),
            ..Default::default()
        });
        assert!((s.connection - 0.2).abs() < 1e-9);
        assert!((s.health - 0.55).abs() < 1e-9);
        assert_eq!(s.query, 1.0, "not measured, not counted");
    }

    #[test]
    fn latency_and_the_rate_of_seq_scans_lower_query_health() {
        let s = scores(Inputs {
            p95_latency_ms: Some(250.0),
            seq_scans_per_second: Some(20.0),
            ..Default::default()
        });
        assert!((s.query - (0.75 - 0.2)).abs() < 1e-9);
        let saturated = scores(Inputs {
            seq_scans_per_second: Some(10_000.0),
            ..Default::default()
        });
        assert_eq!(saturated.query, 0.5);
    }
}
