//! `ferric-bench`: measures the API the way issue #4 describes, against a
//! ferric it starts itself (SQLite, fake-hardware, port 0) or `--url`.
//! Prints `key: value` lines and writes the same figures as JSON.
//!
//! Run: `cargo run --release -p ferric-bench -- --ferric target/release/ferric`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::StreamExt;
use rand::Rng;
use serde_json::{json, Map, Value};

#[derive(Parser)]
struct Args {
    /// Benchmark an already running ferric (no RSS/start-up figures).
    #[arg(long)]
    url: Option<String>,
    /// The ferric binary to start [default: next to this binary].
    #[arg(long)]
    ferric: Option<PathBuf>,
    /// Nodes to enrol.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Concurrent requests.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Nodes in the lifecycle workload.
    #[arg(long, default_value_t = 200)]
    cycle_nodes: usize,
    /// Seconds of random GETs.
    #[arg(long, default_value_t = 10)]
    get_seconds: u64,
    /// Where to write the JSON figures.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
}

struct Server {
    child: Child,
    url: String,
    started_to_answering: Duration,
    _data_dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn start_server(binary: &PathBuf) -> anyhow::Result<Server> {
    let data_dir = std::env::temp_dir().join(format!("ferric-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let url = loop {
        let Some(line) = lines.next() else { bail!("ferric exited before listening") };
        let line = line?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap_or("").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    // Listening; `main` adds the time of the first answered request.
    let started_to_answering = loop {
        if std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok() {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("ferric did not answer in 30 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Ok(Server { child, url, started_to_answering, _data_dir: data_dir })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

struct Bench {
    http: reqwest::Client,
    url: String,
    figures: Map<String, Value>,
}

impl Bench {
    fn record(&mut self, key: &str, value: f64) {
        println!("{key}: {value:.3}");
        self.figures.insert(key.to_owned(), json!((value * 1000.0).round() / 1000.0));
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-OpenStack-Ironic-API-Version", "1.115");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? })
    }

    /// Runs `count` calls of `make(i)` with the configured concurrency and
    /// returns (total time, sorted latencies).
    async fn run_many<F, Fut>(
        &self,
        count: usize,
        concurrency: usize,
        make: F,
    ) -> anyhow::Result<(Duration, Vec<Duration>)>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let started = Instant::now();
        let mut latencies: Vec<Duration> = futures::stream::iter(0..count)
            .map(|index| {
                let call = make(index);
                async move {
                    let begun = Instant::now();
                    call.await.map(|()| begun.elapsed())
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        latencies.sort();
        Ok((started.elapsed(), latencies))
    }

    async fn wait_for_states(
        &self,
        uuids: &[String],
        wanted: &str,
        started: Instant,
        finished: &mut Vec<Duration>,
    ) -> anyhow::Result<()> {
        let mut pending: Vec<String> = uuids.to_vec();
        while !pending.is_empty() {
            let nodes = self
                .call(
                    reqwest::Method::GET,
                    "/v1/nodes?fields=uuid,provision_state,reservation&limit=1000",
                    None,
                )
                .await?;
            let mut still = Vec::new();
            let list = nodes["nodes"].as_array().cloned().unwrap_or_default();
            for uuid in pending {
                let node = list.iter().find(|n| n["uuid"] == uuid.as_str());
                match node {
                    Some(node)
                        if node["provision_state"] == wanted && node["reservation"].is_null() =>
                    {
                        finished.push(started.elapsed());
                    }
                    Some(node)
                        if node["provision_state"]
                            .as_str()
                            .is_some_and(|s| s.ends_with("failed")) =>
                    {
                        bail!("node {uuid} failed: {node}");
                    }
                    _ => still.push(uuid),
                }
            }
            pending = still;
            if started.elapsed() > Duration::from_secs(600) {
                bail!("timed out waiting for {wanted}");
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    async fn cycle(
        &mut self,
        uuids: &[String],
        verb: &str,
        wanted: &str,
        key: &str,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let concurrency = uuids.len().max(1);
        let this: &Bench = self;
        this.run_many(uuids.len(), concurrency, |i| {
            let path = format!("/v1/nodes/{}/states/provision", uuids[i]);
            let body = json!({"target": verb});
            async move { this.call(reqwest::Method::PUT, &path, Some(body)).await.map(|_| ()) }
        })
        .await?;
        let mut finished = Vec::new();
        self.wait_for_states(uuids, wanted, started, &mut finished).await?;
        finished.sort();
        let total = started.elapsed().as_secs_f64();
        self.record(&format!("{key}_total_s"), total);
        self.record(&format!("{key}_p50_ms"), percentile(&finished, 0.5));
        self.record(&format!("{key}_p99_ms"), percentile(&finished, 0.99));
        Ok(())
    }
}

/// The `next` link of a listing page: ferric writes it after the items, so
/// it is found from the end without parsing the page.
fn next_link(page: &[u8]) -> Option<String> {
    let tail = &page[page.len().saturating_sub(4096)..];
    let text = String::from_utf8_lossy(tail);
    let at = text.rfind("\"next\":\"")?;
    let rest = &text[at + 8..];
    let url = &rest[..rest.find('"')?];
    url.find("/v1/").map(|start| url[start..].to_owned())
}

/// One page of a node listing, items skipped rather than parsed.
#[derive(serde::Deserialize)]
struct Page {
    nodes: Vec<serde::de::IgnoredAny>,
}

fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = match &args.url {
        Some(_) => None,
        None => {
            let binary = match &args.ferric {
                Some(path) => path.clone(),
                None => std::env::current_exe()?.with_file_name("ferric"),
            };
            Some(start_server(&binary)?)
        }
    };
    let url = match (&args.url, &server) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(server)) => server.url.clone(),
        (None, None) => bail!("no server"),
    };
    let mut bench = Bench {
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build()?,
        url,
        figures: Map::new(),
    };
    if let Some(server) = &server {
        // The first answered request.
        let started = Instant::now();
        bench.call(reqwest::Method::GET, "/", None).await?;
        let answering = server.started_to_answering + started.elapsed();
        bench.record("startup_to_answering_ms", answering.as_secs_f64() * 1000.0);
    }
    let n = args.nodes;
    let c = args.concurrency;

    // 1. Enrol.
    let names: Vec<String> =
        (0..n).map(|i| format!("bench-{i}-{}", rand::thread_rng().gen::<u32>())).collect();
    let uuids: Arc<tokio::sync::Mutex<Vec<String>>> = Arc::default();
    let (total, latencies) = bench
        .run_many(n, c, |i| {
            let body = json!({"driver": "fake-hardware", "name": names[i], "properties": {"cpus": 8, "memory_mb": 65536}});
            let uuids = uuids.clone();
            let bench = &bench;
            async move {
                let node = bench.call(reqwest::Method::POST, "/v1/nodes", Some(body)).await?;
                uuids.lock().await.push(node["uuid"].as_str().unwrap_or_default().to_owned());
                Ok(())
            }
        })
        .await?;
    bench.record("enroll_nodes_per_s", n as f64 / total.as_secs_f64());
    bench.record("enroll_p50_ms", percentile(&latencies, 0.5));
    bench.record("enroll_p99_ms", percentile(&latencies, 0.99));
    let uuids: Vec<String> = uuids.lock().await.clone();

    // 2. One port per node (a random prefix keeps reruns from colliding).
    let prefix: u16 = rand::thread_rng().gen();
    let (total, latencies) =
        bench
            .run_many(n, c, |i| {
                let mac = format!(
                    "52:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    prefix >> 8,
                    prefix & 0xff,
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff
                );
                let body = json!({"address": mac, "node_uuid": uuids[i]});
                let bench = &bench;
                async move {
                    bench.call(reqwest::Method::POST, "/v1/ports", Some(body)).await.map(|_| ())
                }
            })
            .await?;
    bench.record("ports_per_s", n as f64 / total.as_secs_f64());
    bench.record("ports_p50_ms", percentile(&latencies, 0.5));
    bench.record("ports_p99_ms", percentile(&latencies, 0.99));

    // 3. Listings, following `next`. Timed to the last byte of the last
    // page; the client's JSON parsing is not the server's cost, so pages are
    // parsed (and the count checked) outside the timed runs.
    for (key, first) in
        [("list_detailed_ms", "/v1/nodes?detail=true"), ("list_plain_ms", "/v1/nodes")]
    {
        let mut runs = Vec::new();
        for run in 0..6 {
            let started = Instant::now();
            let mut pages = Vec::new();
            let mut path = Some(first.to_owned());
            while let Some(current) = path.take() {
                let bytes = bench
                    .http
                    .get(format!("{}{current}", bench.url))
                    .header("X-OpenStack-Ironic-API-Version", "1.115")
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                path = next_link(&bytes);
                pages.push(bytes);
            }
            let elapsed = started.elapsed();
            let mut count = 0;
            for page in &pages {
                count += serde_json::from_slice::<Page>(page)?.nodes.len();
            }
            if count < n {
                bail!("{first}: listed {count} nodes, expected at least {n}");
            }
            // The first run warms the server's caches, as a poller's would be.
            if run > 0 {
                runs.push(elapsed);
            }
        }
        runs.sort();
        bench.record(key, runs[runs.len() / 2].as_secs_f64() * 1000.0);
    }

    // 4. Random GETs for a fixed time.
    let deadline = Instant::now() + Duration::from_secs(args.get_seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c {
        let http = bench.http.clone();
        let base = bench.url.clone();
        let uuids = uuids.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let uuid = &uuids[rand::thread_rng().gen_range(0..uuids.len())];
                let begun = Instant::now();
                let response = http
                    .get(format!("{base}/v1/nodes/{uuid}"))
                    .header("X-OpenStack-Ironic-API-Version", "1.115")
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(begun.elapsed());
                    }
                    _ => return Err(anyhow::anyhow!("GET failed")),
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    latencies.sort();
    bench.record("get_req_per_s", latencies.len() as f64 / started.elapsed().as_secs_f64());
    bench.record("get_p50_ms", percentile(&latencies, 0.5));
    bench.record("get_p99_ms", percentile(&latencies, 0.99));

    if let Some(server) = &server {
        if let Some(kib) = rss_kib(server.child.id()) {
            bench.record("rss_mib_after_load", kib / 1024.0);
        }
    }

    // 5. Lifecycle of `cycle_nodes` nodes at zero step delay.
    let cycle: Vec<String> = uuids.iter().take(args.cycle_nodes).cloned().collect();
    let started = Instant::now();
    bench.cycle(&cycle, "manage", "manageable", "cycle_manage").await?;
    bench.cycle(&cycle, "provide", "available", "cycle_provide").await?;
    bench.cycle(&cycle, "active", "active", "cycle_deploy").await?;
    bench.record("cycle_manage_provide_active_total_s", started.elapsed().as_secs_f64());
    bench.cycle(&cycle, "deleted", "available", "cycle_undeploy").await?;

    if let Some(server) = &server {
        if let Some(kib) = rss_kib(server.child.id()) {
            bench.record("rss_mib_end", kib / 1024.0);
        }
    }
    let mut out = bench.figures.clone();
    out.insert("nodes".into(), json!(n));
    out.insert("concurrency".into(), json!(c));
    out.insert("cycle_nodes".into(), json!(args.cycle_nodes));
    std::fs::write(&args.json, serde_json::to_string_pretty(&Value::Object(out))?)?;
    println!("json: {}", args.json.display());
    Ok(())
}
