//! Replays golden trajectories recorded from PyTorch, adabelief-pytorch and Optax on this
//! machine's adapter and prints a pass/fail table: a check of a new GPU or driver.
//!
//! Run: `cargo run --release --example conformance -- tests/golden/optimizers.json`
//! (the file defaults to that one). Exits with status 1 when a case fails.

#[path = "../tests/replay/mod.rs"]
mod replay;

fn main() -> wgpu_optim::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/golden/optimizers.json".to_string());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the fixture {path}: {e}"));
    let ctx = wgpu_optim::Context::new_blocking()?;
    if let Some(info) = ctx.adapter_info() {
        println!(
            "adapter: {} ({:?}, {} {})",
            info.name, info.backend, info.driver, info.driver_info
        );
    }
    println!(
        "tolerance: |device - golden| <= {:e} + {:e} |golden|; NaN and inf must match\n",
        replay::ATOL,
        replay::RTOL
    );
    println!("{:<6} {}", "", replay::Report::header());
    let mut failed = 0;
    let cases = replay::cases(&text);
    for case in &cases {
        let report = replay::replay(&ctx, case);
        let verdict = if report.failures.is_empty() {
            "pass"
        } else {
            failed += 1;
            "FAIL"
        };
        println!("{verdict:<6} {}", report.row());
        for failure in &report.failures {
            println!("         {failure}");
        }
    }
    println!("\n{} of {} cases pass", cases.len() - failed, cases.len());
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
