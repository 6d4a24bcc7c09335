//! CLI transcripts against a running ferric (SQLite, fake-hardware): each
//! command's output is compared with `tests/transcripts/*.txt`. UUIDs and
//! timestamps are replaced by placeholders. Regenerate with
//! `FERRIC_UPDATE_SNAPSHOTS=1 cargo test -p ferric-cli --test transcripts`.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use ferric_test_utils::{Backend, TestContext};

#[derive(Parser)]
#[command(name = "ferric")]
struct Cli {
    #[command(flatten)]
    options: ferric_cli::GlobalOptions,
    #[command(subcommand)]
    command: ferric_cli::Command,
}

fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let rest: String = chars[index..chars.len().min(index + 36)].iter().collect();
        if rest.len() == 36 && uuid::Uuid::parse_str(&rest).is_ok() {
            out.push_str("<uuid>                              ");
            index += 36;
            continue;
        }
        let stamp: String = chars[index..chars.len().min(index + 32)].iter().collect();
        if stamp.len() == 32
            && stamp.as_bytes()[4] == b'-'
            && stamp.as_bytes()[10] == b'T'
            && stamp.ends_with("+00:00")
        {
            out.push_str("<time>                          ");
            index += 32;
            continue;
        }
        out.push(chars[index]);
        index += 1;
    }
    out
}

fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

async fn transcript(ctx: &TestContext, commands: &str) -> String {
    let mut out = String::new();
    for line in commands.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push_str(&format!("$ {line}\n"));
        let mut words = split(line);
        words.insert(1, format!("--url={}", ctx.base));
        let cli = match Cli::try_parse_from(&words) {
            Ok(cli) => cli,
            Err(error) => {
                out.push_str(&format!("usage error: {}\n", error.kind()));
                continue;
            }
        };
        match ferric_cli::execute(&cli.options, cli.command).await {
            Ok(text) => out.push_str(&text),
            Err(error) => out.push_str(&format!("error: {error:#}\n")),
        }
    }
    normalize(&out)
}

fn check(name: &str, actual: &str) {
    let path = format!("{}/tests/transcripts/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("FERRIC_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        panic!("transcript {name} differs from {path} (rerun with FERRIC_UPDATE_SNAPSHOTS=1 to accept):\n{actual}");
    }
}

#[tokio::test]
async fn node_lifecycle_transcript() {
    let ctx = TestContext::start(Backend::Sqlite).await.unwrap();
    let text = transcript(
        &ctx,
        "
        ferric node create --driver fake-hardware --name web-1 --property cpus=8 --driver-info ipmi_password=secret -c name -c provision_state -c properties -c driver_info
        ferric node create --driver fake-hardware --name web-1
        ferric node create --driver nope
        ferric node list
        ferric node manage web-1 --wait
        ferric node provide web-1 --wait
        ferric node set web-1 --extra rack=r7 --resource-class baremetal --description 'the first one'
        ferric node show web-1 -f yaml -c name -c extra -c resource_class -c description -c provision_state
        ferric node unset web-1 --extra rack --description
        ferric node show web-1 -f json -c extra -c description
        ferric node deploy web-1 --wait --config-drive '{\"user_data\": \"hello\"}'
        ferric node list --long -c Name -c 'Provisioning State' -c 'Power State' -f value
        ferric node provide web-1
        ferric node power off web-1 --wait
        ferric node boot-device set web-1 disk --persistent
        ferric node boot-device show web-1
        ferric node maintenance set web-1 --reason 'fan noise'
        ferric node show web-1 -c maintenance -c maintenance_reason -f value
        ferric node maintenance unset web-1
        ferric node undeploy web-1 --wait
        ferric node validate web-1 -c interface -c result
        ferric port create 52:54:00:AB:CD:01 --node web-1 -c address -c pxe_enabled
        ferric port create 52:54:00:ab:cd:01 --node web-1
        ferric port list -f value -c address
        ferric chassis create --description 'rack 7' -c description
        ferric driver list
        ferric conductor list
        ferric node delete web-1 nope
        ferric node list
        ferric node show web-1
        ",
    )
    .await;
    check("node_lifecycle", &text);
    ctx.stop().await;
}
