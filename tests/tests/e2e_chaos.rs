//! The tests that try to break it, short forms (issue 9, tests 1 and 2): bookings stream
//! through a simulated lab while replicas crash, fail over and lose the apiserver, or while
//! the BMCs misbehave; every invariant is checked from the API and the BMCs' own logs.
//! `cargo xtask chaos` runs the long forms of the same code.

use anyhow::Result;
use labpods_tests::chaos::{self, Chaos, Report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_chaos_crashes_failovers_and_a_black_hole_break_no_invariant() -> Result<()> {
    let report = chaos::run(&Chaos::crash_short("e2e-chaos-crash")).await?;
    println!("{}", Report::table(std::slice::from_ref(&report)));
    report.ensure_clean()?;
    assert_eq!(report.kills, 5, "{report:?}");
    assert_eq!(report.black_holes, 1, "{report:?}");
    assert!(report.failovers >= 1, "no failover happened: {report:?}");
    assert!(
        report.ready_then_released > 0,
        "no booking was served: {report:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_chaos_bmc_faults_end_every_lease_ready_or_failed_with_a_reason() -> Result<()> {
    let report = chaos::run(&Chaos::faults_short("e2e-chaos-faults")).await?;
    println!("{}", Report::table(std::slice::from_ref(&report)));
    report.ensure_clean()?;
    assert!(
        report.ready_then_released > 0,
        "no booking was served despite healthy spares: {report:?}"
    );
    Ok(())
}
