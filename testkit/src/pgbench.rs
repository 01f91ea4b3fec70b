//! Reading pgbench's results, for the benchmarks that drive load with it.

use std::process::Output;

/// The `tps = …` of a finished pgbench run; panics with pgbench's own output when it failed.
pub fn tps(output: &Output) -> f64 {
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output: {text}"))
}
