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

/// clap's own consistency checks over every subcommand (names, conflicts,
/// `required_unless_present` targets), which parsing alone only runs for the
/// subcommands a transcript uses.
#[test]
fn command_tree_is_consistent() {
    <Cli as clap::CommandFactory>::command().debug_assert();
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

#[tokio::test]
async fn allocations_transcript() {
    let ctx = TestContext::start(Backend::Sqlite).await.unwrap();
    let text = transcript(
        &ctx,
        "
        ferric node create --driver fake-hardware --name gpu-1 --resource-class gold -c name -c resource_class
        ferric node add trait gpu-1 CUSTOM_GPU CUSTOM_FAST
        ferric node trait list gpu-1
        ferric node remove trait gpu-1 CUSTOM_FAST
        ferric node trait list gpu-1 -f value
        ferric node manage gpu-1 --wait
        ferric node provide gpu-1 --wait
        ferric allocation create --resource-class gold --trait CUSTOM_GPU --name job-1 --extra team=ml --wait -c name -c state -c resource_class -c traits -c extra -c last_error
        ferric allocation list -c Name -c State -c 'Resource Class'
        ferric node show gpu-1 -c provision_state -c name -f value
        ferric allocation create --resource-class gold --name job-2 --wait
        ferric allocation create --resource-class gold --name job-2
        ferric allocation create --trait CUSTOM_GPU
        ferric allocation list --state error --long -f value -c name -c state -c last_error
        ferric allocation list --node gpu-1 -f value -c name
        ferric allocation set job-1 --extra owner=me
        ferric allocation unset job-1 --extra team
        ferric allocation show job-1 -f yaml -c name -c extra -c state
        ferric allocation set job-1
        ferric allocation show nope
        ferric allocation delete job-1 job-2 nope
        ferric allocation list
        ",
    )
    .await;
    check("allocations", &text);
    ctx.stop().await;
}

#[tokio::test]
async fn templates_and_runbooks_transcript() {
    let ctx = TestContext::start(Backend::Sqlite).await.unwrap();
    let text = transcript(
        &ctx,
        "
        ferric deploy-template create CUSTOM_RAID1 --steps '[{\"interface\": \"raid\", \"step\": \"create_configuration\", \"args\": {\"logical_disks\": []}, \"priority\": 10}]' --extra k=v -c name -c steps -c extra
        ferric deploy-template create CUSTOM_RAID1 --steps '[{\"interface\": \"raid\", \"step\": \"delete_configuration\", \"args\": {}, \"priority\": 10}]'
        ferric deploy-template create CUSTOM_BAD --steps '[{\"interface\": '
        ferric deploy-template create CUSTOM_BAD --steps '[]'
        ferric deploy-template list
        ferric deploy-template set CUSTOM_RAID1 --name CUSTOM_MIRROR --extra a=b
        ferric deploy-template unset CUSTOM_MIRROR --extra k
        ferric deploy-template show CUSTOM_MIRROR -f json -c name -c extra
        ferric deploy-template list --long -c Name -c Steps -f value
        ferric deploy-template delete CUSTOM_MIRROR CUSTOM_RAID1
        ferric deploy-template list
        ferric node create --driver fake-hardware --name rb-1 --interface bios=fake -c name -c bios_interface
        ferric node manage rb-1 --wait
        ferric runbook create CUSTOM_BIOS --steps '[{\"interface\": \"bios\", \"step\": \"apply_configuration\", \"args\": {\"settings\": [{\"name\": \"ProcVirtualization\", \"value\": \"Enabled\"}]}, \"order\": 1}]' --trait CUSTOM_BIOS --public -c name -c public -c traits -c steps
        ferric runbook create --name CUSTOM_BIOS --steps '[{\"interface\": \"deploy\", \"step\": \"erase_devices\", \"order\": 1}]'
        ferric runbook create CUSTOM_OTHER --steps 'erase everything'
        ferric runbook list
        ferric node clean rb-1 --runbook CUSTOM_BIOS --wait
        ferric node add trait rb-1 CUSTOM_BIOS
        ferric node clean rb-1 --runbook CUSTOM_BIOS --wait
        ferric node show rb-1 -c provision_state -c last_error -f value
        ferric node bios setting list rb-1
        ferric node bios setting show rb-1 ProcVirtualization -c name -c value
        ferric node bios setting show rb-1 Nope
        ferric node firmware component list rb-1
        ferric node clean rb-1
        ferric node clean rb-1 --runbook CUSTOM_BIOS --clean-steps '[]'
        ferric runbook set CUSTOM_BIOS --owner proj-a --extra k=v
        ferric runbook unset CUSTOM_BIOS --public --trait CUSTOM_BIOS
        ferric runbook set CUSTOM_BIOS --owner proj-a --extra k=v --description 'BIOS defaults'
        ferric runbook show CUSTOM_BIOS -f yaml -c name -c description -c owner -c public -c traits -c extra
        ferric runbook list --long -c Name -c Owner -c Public -f value
        ferric runbook delete CUSTOM_BIOS
        ferric runbook show CUSTOM_BIOS
        ",
    )
    .await;
    check("templates_and_runbooks", &text);
    ctx.stop().await;
}

#[tokio::test]
async fn volumes_and_vifs_transcript() {
    let ctx = TestContext::start(Backend::Sqlite).await.unwrap();
    let text = transcript(
        &ctx,
        "
        ferric node create --driver fake-hardware --name vol-1 -c name
        ferric volume connector create --node vol-1 --type iqn --connector-id iqn.2017-05.org.openstack:01 --uuid 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a01 -c type -c connector_id
        ferric volume connector create --node vol-1 --type fc --connector-id x
        ferric volume connector create --node nope --type iqn --connector-id iqn.2017-05.org.openstack:02
        ferric volume connector list -c Type -c 'Connector ID'
        ferric volume target create --node vol-1 --type iscsi --boot-index 0 --volume-id 04452bed-5367-4202-8bf5-de4335ac56d2 --property target_iqn=iqn.x --property auth_password=s3cret --uuid 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a02 -c volume_type -c boot_index -c properties
        ferric volume target create --node vol-1 --type iscsi --boot-index 0 --volume-id other
        ferric volume target list --node vol-1 -c 'Volume Type' -c 'Boot Index'
        ferric volume target set 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a02 --type fibre_channel
        ferric node manage vol-1 --wait
        ferric node show vol-1 -c power_state -f value
        ferric volume target set 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a02 --type fibre_channel --property lun=1
        ferric volume target unset 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a02 --property target_iqn
        ferric volume target show 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a02 -f yaml -c volume_type -c properties
        ferric volume connector set 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a01 --extra rack=r1
        ferric volume connector list --long -c Type -c Extra -f value
        ferric volume target delete 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a02
        ferric volume connector delete 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a01 8f0c3a4e-0d4e-4a51-9d0e-2f1f3c9b1a01
        ferric volume target list
        ferric node create --driver fake-hardware --name vif-1 -c name
        ferric node vif attach vif-1 vif-0
        ferric port create 52:54:00:aa:00:01 --node vif-1 -c address
        ferric node vif attach vif-1 vif-a
        ferric node vif list vif-1
        ferric node vif attach vif-1 vif-b
        ferric node vif detach vif-1 vif-a
        ferric node vif detach vif-1 vif-a
        ferric node vif list vif-1
        ",
    )
    .await;
    check("volumes_and_vifs", &text);
    ctx.stop().await;
}

#[tokio::test]
async fn inspection_rules_transcript() {
    let ctx = TestContext::start(Backend::Sqlite).await.unwrap();
    let text = transcript(
        &ctx,
        "
        ferric inspection rule create --uuid 5b2e0c1a-7d3f-4e8b-9a6c-1d2e3f4a5b01 --description 'Dell BMC' --priority 100 --conditions '[{\"op\": \"contains\", \"args\": {\"value\": \"{inventory[system_vendor][manufacturer]}\", \"regex\": \"(?i)dell\"}}]' --actions '[{\"op\": \"add-trait\", \"args\": {\"name\": \"CUSTOM_DELL\"}}]' -c description -c priority -c phase -c conditions -c actions
        ferric inspection rule create --actions '[{\"op\": \"explode\", \"args\": {}}]'
        ferric inspection rule create --actions 'add a trait'
        ferric inspection rule list
        ferric inspection rule set 5b2e0c1a-7d3f-4e8b-9a6c-1d2e3f4a5b01 --priority 50 --sensitive
        ferric inspection rule show 5b2e0c1a-7d3f-4e8b-9a6c-1d2e3f4a5b01 -f yaml -c priority -c sensitive -c conditions -c actions
        ferric inspection rule list --long -c Description -c Priority -c Sensitive -f value
        ferric inspection rule unset 5b2e0c1a-7d3f-4e8b-9a6c-1d2e3f4a5b01 --description
        ferric inspection rule delete 5b2e0c1a-7d3f-4e8b-9a6c-1d2e3f4a5b01
        ferric inspection rule show 5b2e0c1a-7d3f-4e8b-9a6c-1d2e3f4a5b01
        ",
    )
    .await;
    check("inspection_rules", &text);
    ctx.stop().await;
}
