//! Micro-benchmark: power status through ferric's client (one session,
//! reused) against `ipmitool -I lanplus -C 3 ... power status` (a process,
//! and so a session, per call), both against `ipmi_sim` on 127.0.0.1.
//!
//!     cargo run --release -p ferric-ipmi --example bench_power_status [N_FERRIC] [N_IPMITOOL]
//!
//! Defaults: 200 ferric calls, 50 ipmitool runs. Prints mean, p50 and p99
//! per call for each, and the ratio of the means, for two BMCs:
//! - "bare": ipmi_sim answering Get Chassis Status from memory, so the
//!   numbers are the IPMI exchange itself;
//! - "chassis script": the lab's set-up, where ipmi_sim runs a shell script
//!   for every status read (a fork costing ~2 ms that both clients pay).

use std::time::{Duration, Instant};

use ferric_ipmi::testing::{tools_present, SimBmc};
use ferric_ipmi::{Client, Config};

struct Summary {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Summary { mean: total / samples.len() as u32, p50: at(0.50), p99: at(0.99) }
}

fn show(name: &str, n: usize, summary: &Summary) {
    println!(
        "{name:<34} n={n:<4} mean {:>9.3} ms   p50 {:>9.3} ms   p99 {:>9.3} ms",
        summary.mean.as_secs_f64() * 1e3,
        summary.p50.as_secs_f64() * 1e3,
        summary.p99.as_secs_f64() * 1e3
    );
}

async fn run(
    label: &str,
    sim: &SimBmc,
    n_ferric: usize,
    n_ipmitool: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "\n== {label}: ipmi_sim on 127.0.0.1:{} (cipher suite 3 for both clients)",
        sim.port()
    );

    let client = Client::new(Config { cipher_suite: Some(3), ..sim.config() })?;
    // Open the session outside the measurement: the point is reuse.
    let opened = Instant::now();
    client.power_is_on().await?;
    println!("ferric session setup + first call: {:.3} ms", opened.elapsed().as_secs_f64() * 1e3);
    let mut ferric = Vec::with_capacity(n_ferric);
    for _ in 0..n_ferric {
        let started = Instant::now();
        client.power_is_on().await?;
        ferric.push(started.elapsed());
    }
    client.close().await?;

    let mut ipmitool = Vec::with_capacity(n_ipmitool);
    for _ in 0..n_ipmitool {
        let started = Instant::now();
        let output = sim.ipmitool(&["power", "status"])?;
        ipmitool.push(started.elapsed());
        if !output.status.success()
            || !String::from_utf8_lossy(&output.stdout).contains("Chassis Power is")
        {
            return Err(
                format!("ipmitool failed: {}", String::from_utf8_lossy(&output.stderr)).into()
            );
        }
    }

    let ferric = summarize(ferric);
    let ipmitool = summarize(ipmitool);
    show("ferric Client (session reused)", n_ferric, &ferric);
    show("ipmitool process per call", n_ipmitool, &ipmitool);
    println!(
        "ratio (ipmitool / ferric): mean {:.1}x, p50 {:.1}x",
        ipmitool.mean.as_secs_f64() / ferric.mean.as_secs_f64(),
        ipmitool.p50.as_secs_f64() / ferric.p50.as_secs_f64()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n_ferric: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200).max(1);
    let n_ipmitool: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(50).max(1);
    if !tools_present("bench_power_status", &["ipmi_sim", "ipmitool"]) {
        return Ok(());
    }
    for (label, sim) in
        [("bare", SimBmc::start_without_chassis()?), ("chassis script", SimBmc::start()?)]
    {
        run(label, &sim, n_ferric, n_ipmitool).await?;
    }
    Ok(())
}
