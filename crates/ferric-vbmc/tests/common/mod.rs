//! Shared helpers for the integration tests: running ipmitool, skipping
//! (or failing under `CI=true`) when a tool is missing.

#![allow(dead_code)]

use std::process::{Output, Stdio};

/// Whether all `programs` are on PATH; if not, prints why `test` is skipped
/// and returns false, or panics under `CI=true`.
pub fn require(test: &str, programs: &[&str], extra_reason: Option<&str>) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| !ferric_ipmi::testing::on_path(program))
        .collect();
    let reason = if !missing.is_empty() {
        Some(format!("{} not installed", missing.join(" and ")))
    } else {
        extra_reason.map(str::to_string)
    };
    let Some(reason) = reason else { return true };
    let reason = format!("{test}: {reason}");
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{reason}");
    }
    eprintln!("SKIPPED {reason}");
    false
}

/// Runs `ipmitool -I lanplus` against 127.0.0.1:`port`.
pub async fn ipmitool(port: u16, suite: u8, user: &str, password: &str, args: &[&str]) -> Output {
    tokio::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", user, "-P", password, "-C"])
        .arg(suite.to_string())
        .args(["-N", "1", "-R", "3"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ipmitool")
}

/// Runs ipmitool and returns its stdout, failing the test on a non-zero
/// exit.
pub async fn ipmitool_ok(port: u16, suite: u8, args: &[&str]) -> String {
    let output = ipmitool(port, suite, "u", "p", args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ipmitool -C {suite} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
