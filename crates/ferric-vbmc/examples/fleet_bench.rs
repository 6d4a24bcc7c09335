//! Benchmark (measures, asserts nothing): N simulated vbmcs in this process
//! on 127.0.0.1, and ferric's IPMI client reading every power state with
//! bounded concurrency; first with session setup (RAKP), then again on the
//! open sessions.
//!
//! `cargo run --release -p ferric-vbmc --example fleet_bench -- [N] [CONCURRENCY] [SUITE]`

use std::sync::Arc;
use std::time::Instant;

use ferric_ipmi::{Client, Config};
use ferric_vbmc::{IpmiServer, IpmiSettings, SimulatedMachine};
use futures::stream::{self, StreamExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);
    let concurrency: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(64);
    let suite: u8 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(17);

    let started = Instant::now();
    let mut servers = Vec::with_capacity(count);
    for index in 0..count {
        let machine = SimulatedMachine::new(format!("sim-{index}"));
        if index % 2 == 0 {
            machine.state().power = Some(ferric_vbmc::PowerState::On);
        }
        let server =
            IpmiServer::start(IpmiSettings::local(0, "admin", "password"), Arc::new(machine))
                .await?;
        servers.push(server);
    }
    println!("vbmcs: {count}");
    println!("start_ms: {}", started.elapsed().as_millis());

    let clients: Vec<Client> = servers
        .iter()
        .map(|server| {
            let mut config =
                Config::new("127.0.0.1", server.local_addr().port(), "admin", "password");
            config.cipher_suite = Some(suite);
            Client::new(config)
        })
        .collect::<Result<_, _>>()?;

    for round in ["cold", "warm"] {
        let started = Instant::now();
        let results: Vec<_> = stream::iter(clients.iter().enumerate())
            .map(|(index, client)| async move { (index, client.power_is_on().await) })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let elapsed = started.elapsed();
        let failed = results.iter().filter(|(_, result)| result.is_err()).count();
        let wrong = results
            .iter()
            .filter(|(index, result)| matches!(result, Ok(on) if *on != (index % 2 == 0)))
            .count();
        println!(
            "{round}: suite={suite} concurrency={concurrency} total_ms={} failed={failed} wrong={wrong} per_sec={:.0}",
            elapsed.as_millis(),
            count as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}
