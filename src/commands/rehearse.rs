//! `peerlab rehearse SCENARIO --report DIR`.

use std::path::Path;

use anyhow::Context as _;

use crate::node::{setup, SetupOptions};
use crate::rehearse::rehearse;

/// Runs the scenario on the embedded stack; fails (non-zero exit) when an expectation fails.
pub fn run(scenario: &Path, report_dir: &Path) -> anyhow::Result<()> {
    let installation =
        setup(&SetupOptions::default()).context("provisioning the embedded stack")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (verdict, _) = runtime.block_on(rehearse(&installation, scenario, report_dir))?;
    for e in &verdict.expectations {
        let mark = if e.passed { "pass" } else { "FAIL" };
        println!(
            "{mark}  {}: observed {}; expected {}",
            e.name, e.observed, e.expected
        );
    }
    for error in &verdict.step_errors {
        println!("FAIL  {error}");
    }
    let failed =
        verdict.expectations.iter().filter(|e| !e.passed).count() + verdict.step_errors.len();
    println!(
        "{}: {} in {:.1}s, {} events seen, report in {}",
        verdict.scenario,
        if verdict.passed { "PASSED" } else { "FAILED" },
        verdict.duration_secs,
        verdict.events_seen,
        report_dir.join("report.html").display()
    );
    if failed > 0 {
        anyhow::bail!(
            "{failed} expectation(s) of scenario `{}` failed; see {}",
            verdict.scenario,
            report_dir.join("verdict.json").display()
        );
    }
    Ok(())
}
