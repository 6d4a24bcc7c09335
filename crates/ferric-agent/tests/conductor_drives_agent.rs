//! The conductor drives a real `ferric-agent` process through cleaning,
//! deploying (image streamed to a file-backed disk, checksum verified,
//! config drive added) and undeploying, over the real API and command API
//! on loopback. This is the whole deploy path except firmware and the
//! network boot, which the end-to-end QEMU test adds.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferric_test_utils::{Backend, TestContext};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

const MAC: &str = "52:54:00:a6:e0:01";
const DISK_SIZE: u64 = 64 << 20;
const IMAGE_SIZE: usize = 16 << 20;

/// A whole-disk image: an MBR with one partition, random content.
fn disk_image() -> Vec<u8> {
    let mut image = vec![0u8; IMAGE_SIZE];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in image.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    image[..512].fill(0);
    let entry = &mut image[446..462];
    entry[0] = 0x80;
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&((IMAGE_SIZE as u32 / 512) - 2048).to_le_bytes());
    image[510] = 0x55;
    image[511] = 0xaa;
    image
}

/// Serves `image` at `/image.raw` on loopback; returns the base URL.
async fn serve_image(image: Vec<u8>) -> String {
    let image = bytes::Bytes::from(image);
    let app = axum::Router::new().route(
        "/image.raw",
        axum::routing::get(move || {
            let image = image.clone();
            async move { image }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(api: &str, disk: &std::path::Path) -> AgentProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_ferric-agent"))
        .args(["--api-url", api, "--mac", MAC, "--listen", "127.0.0.1:0"])
        .arg("--disk")
        .arg(disk)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferric-agent");
    AgentProcess(child)
}

/// Waits until the node rests in `state` (unreserved).
async fn wait_for(ctx: &TestContext, node: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let body = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        if body["provision_state"] == state && body["reservation"].is_null() {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "node never reached {state}: now {} (last_error: {})",
            body["provision_state"],
            body["last_error"]
        );
        if state != "deploy failed"
            && body["provision_state"].as_str().is_some_and(|s| s.ends_with("failed"))
        {
            panic!("node failed: {} ({})", body["provision_state"], body["last_error"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn enrol(ctx: &TestContext) -> String {
    let reply = ctx
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": "agent-node", "deploy_interface": "direct",
                   "boot_interface": "fake"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let node = reply.body["uuid"].as_str().expect("uuid").to_owned();
    let reply = ctx.post("/v1/ports", json!({"node_uuid": node, "address": MAC})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    node
}

fn read_disk(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).expect("open disk").read_to_end(&mut bytes).expect("read disk");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_deploy_undeploy_through_the_agent() {
    let Some(ctx) = TestContext::start(Backend::Sqlite).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    let file = std::fs::File::create(&disk).expect("disk");
    file.set_len(DISK_SIZE).expect("size disk");
    // Something for cleaning to erase: an old partition table.
    std::fs::write(&disk, disk_image()).expect("old contents");
    std::fs::File::options()
        .write(true)
        .open(&disk)
        .expect("open")
        .set_len(DISK_SIZE)
        .expect("size");

    let image = disk_image();
    let checksum = hex(&sha2::Sha256::digest(&image));
    let images = serve_image(image.clone()).await;
    let node = enrol(&ctx).await;
    let _agent = start_agent(&ctx.base, &disk);

    // manage, then provide: automated cleaning boots the ramdisk (fake
    // power) and the agent erases the disk's metadata.
    ctx.provision(&node, "manage").await;
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "provide"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "available").await;
    assert_eq!(body["power_state"], "power off", "cleaning leaves the node off");
    assert!(read_disk(&disk)[..1 << 20].iter().all(|b| *b == 0), "partition table erased");

    // Deploy with a config drive built by the agent.
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([
                {"op": "add", "path": "/instance_info/image_source", "value": format!("{images}/image.raw")},
                {"op": "add", "path": "/instance_info/image_checksum", "value": checksum},
            ]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = ctx
        .put(
            &format!("/v1/nodes/{node}/states/provision"),
            json!({"target": "active", "configdrive": {
                "meta_data": {"uuid": node, "hostname": "agent-node"},
                "user_data": "#cloud-config\nruncmd: [echo hello]\n"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "active").await;
    assert_eq!(body["power_state"], "power on");
    assert_eq!(body["driver_internal_info"]["deploy_progress"]["percent"], 100.0, "{body}");
    assert!(body["driver_internal_info"].get("agent_url").is_none(), "agent forgotten: {body}");
    let written = read_disk(&disk);
    assert_eq!(written[512..IMAGE_SIZE], image[512..], "image written byte for byte");
    // The config drive is the MBR's second partition, past the image.
    let entry = &written[462..478];
    let start = u32::from_le_bytes(entry[8..12].try_into().expect("4 bytes")) as usize * 512;
    assert!(entry[4] != 0 && start >= IMAGE_SIZE, "config drive partition added: {entry:?}");
    let boot_sector = &written[start..start + 512];
    assert_eq!(boot_sector[510..], [0x55, 0xaa], "a boot sector at the partition's start");
    let label = String::from_utf8_lossy(boot_sector).to_lowercase();
    assert!(label.contains("config-2"), "labelled config-2");

    // Undeploy: tear down, then cleaning through the agent again.
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "deleted"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "available").await;
    assert!(body["instance_info"].as_object().is_some_and(|i| i.is_empty()));
    assert!(read_disk(&disk)[..1 << 20].iter().all(|b| *b == 0), "partition table erased again");
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_fails_the_deploy_and_powers_off() {
    let Some(ctx) = TestContext::start(Backend::Sqlite).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk).expect("disk").set_len(DISK_SIZE).expect("size");
    let images = serve_image(disk_image()).await;
    let node = enrol(&ctx).await;
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([{"op": "add", "path": "/automated_clean", "value": false}]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    ctx.provision(&node, "manage").await;
    ctx.provision(&node, "provide").await;
    let _agent = start_agent(&ctx.base, &disk);
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([
                {"op": "add", "path": "/instance_info/image_source", "value": format!("{images}/image.raw")},
                {"op": "add", "path": "/instance_info/image_checksum", "value": "0".repeat(64)},
            ]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "active"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "deploy failed").await;
    let error = body["last_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("checksum"), "{error}");
    assert_eq!(body["power_state"], "power off", "a failed deploy leaves the machine off");
    assert!(
        read_disk(&disk)[..1 << 20].iter().all(|b| *b == 0),
        "partial image's partition table wiped"
    );
    ctx.stop().await;
}

/// Serves an image store's content the way `ferric serve` does, at
/// `/images/{sha256}`; returns the URL base.
async fn serve_store(store: std::path::PathBuf) -> String {
    let app = axum::Router::new().route(
        "/images/{sha256}",
        axum::routing::get(move |axum::extract::Path(sha256): axum::extract::Path<String>| {
            let path = store.join("sha256").join(sha256);
            async move { std::fs::read(path).map_err(|_| StatusCode::NOT_FOUND) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/images", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_an_image_from_the_store_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_root = dir.path().join("images");
    let store = ferric_imagetools::store::ImageStore::open(&store_root).expect("image store");
    let image = disk_image();
    let source = dir.path().join("demo.raw");
    std::fs::write(&source, &image).expect("image file");
    store.create_from_file(&source, Some("demo".into())).expect("import");
    let mut config = ferric_test_utils::test_conductor_config();
    config.images = Some(ferric_conductor::ImageCatalog {
        store: store_root.clone(),
        url_base: serve_store(store_root).await,
    });
    let Some(ctx) = TestContext::start_with(Backend::Sqlite, config).await else { return };
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk).expect("disk").set_len(DISK_SIZE).expect("size");
    let node = enrol(&ctx).await;
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([{"op": "add", "path": "/automated_clean", "value": false},
                   {"op": "add", "path": "/instance_info/image_source", "value": "demo"}]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = ctx.get(&format!("/v1/nodes/{node}/validate")).await;
    assert_eq!(reply.body["deploy"]["result"], true, "a stored image validates: {:?}", reply.body);
    ctx.provision(&node, "manage").await;
    ctx.provision(&node, "provide").await;
    let _agent = start_agent(&ctx.base, &disk);
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "active"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "active").await;
    assert_eq!(body["instance_info"]["image_os_hash_algo"], "sha512", "{body}");
    assert_eq!(read_disk(&disk)[..IMAGE_SIZE], image[..], "the stored image, byte for byte");

    // An unknown image fails the deploy with a message naming it.
    ctx.provision(&node, "deleted").await;
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([{"op": "add", "path": "/instance_info/image_source", "value": "no-such-image"}]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "active"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "deploy failed").await;
    assert!(body["last_error"].as_str().unwrap_or_default().contains("no-such-image"), "{body}");
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_waiting_for_the_agent_powers_the_node_off() {
    let Some(ctx) = TestContext::start(Backend::Sqlite).await else { return };
    let node = enrol(&ctx).await;
    let checksum = "ab".repeat(32);
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([{"op": "add", "path": "/automated_clean", "value": false},
                   {"op": "add", "path": "/instance_info/image_source", "value": "http://127.0.0.1:9/x.img"},
                   {"op": "add", "path": "/instance_info/image_checksum", "value": checksum}]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    ctx.provision(&node, "manage").await;
    ctx.provision(&node, "provide").await;
    // No agent ever calls back.
    let body = ctx.provision(&node, "active").await;
    assert_eq!(body["provision_state"], "wait call-back", "{body}");
    assert_eq!(body["power_state"], "power on", "the ramdisk was booted");
    let body = ctx.provision(&node, "abort").await;
    assert_eq!(body["provision_state"], "deploy failed", "{body}");
    assert_eq!(body["power_state"], "power off", "abort powers the ramdisk off: {body}");
    assert!(body["driver_internal_info"].get("ramdisk_booted").is_none(), "{body}");
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_through_the_agent_fills_in_properties() {
    let Some(ctx) = TestContext::start(Backend::Sqlite).await else { return };
    let reply = ctx
        .post(
            "/v1/nodes",
            json!({"driver": "fake-hardware", "name": "inspected", "inspect_interface": "agent"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let node = reply.body["uuid"].as_str().expect("uuid").to_owned();
    let reply = ctx.post("/v1/ports", json!({"node_uuid": node, "address": MAC})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    ctx.provision(&node, "manage").await;
    let body = ctx.provision(&node, "inspect").await;
    assert_eq!(body["provision_state"], "inspect wait", "{body}");
    // The agent sees the fixture machine: an 8 GiB virtio disk among others.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qemu");
    let child = Command::new(env!("CARGO_BIN_EXE_ferric-agent"))
        .args(["--api-url", &ctx.base, "--mac", MAC, "--listen", "127.0.0.1:0"])
        .arg("--sys-root")
        .arg(fixture.join("sys"))
        .arg("--proc-root")
        .arg(fixture.join("proc"))
        .arg("--dev-root")
        .arg(fixture.join("dev"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferric-agent");
    let _agent = AgentProcess(child);
    let body = wait_for(&ctx, &node, "manageable").await;
    let properties = &body["properties"];
    assert_eq!(properties["local_gb"], 7, "smallest disk of at least 4 GiB, less one: {body}");
    assert!(properties["memory_mb"].as_u64().is_some_and(|mb| mb > 0), "{body}");
    assert!(properties["cpus"].as_u64().is_some_and(|n| n > 0), "{body}");
    assert!(!body["inspection_finished_at"].is_null(), "{body}");
    assert_eq!(body["power_state"], "power off", "{body}");
    let reply = ctx.get(&format!("/v1/nodes/{node}/inventory")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let disks = reply.body["inventory"]["disks"].as_array().cloned().unwrap_or_default();
    assert!(disks.iter().any(|disk| disk["name"] == "/dev/vda"), "{:?}", reply.body);
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_calls_back_times_out_and_the_node_is_powered_off() {
    let mut config = ferric_test_utils::test_conductor_config();
    config.deploy_callback_timeout = Duration::from_secs(1);
    config.sweep_interval = Duration::from_millis(200);
    let Some(ctx) = TestContext::start_with(Backend::Sqlite, config).await else { return };
    let node = enrol(&ctx).await;
    let reply = ctx
        .patch(
            &format!("/v1/nodes/{node}"),
            json!([{"op": "add", "path": "/automated_clean", "value": false},
                   {"op": "add", "path": "/instance_info/image_source", "value": "http://127.0.0.1:9/x.img"},
                   {"op": "add", "path": "/instance_info/image_checksum", "value": "cd".repeat(32)}]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    ctx.provision(&node, "manage").await;
    ctx.provision(&node, "provide").await;
    let reply =
        ctx.put(&format!("/v1/nodes/{node}/states/provision"), json!({"target": "active"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let body = wait_for(&ctx, &node, "deploy failed").await;
    assert!(body["last_error"].as_str().unwrap_or_default().contains("Timeout"), "{body}");
    // The sweep queues a power-off for the silent ramdisk.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = ctx.get(&format!("/v1/nodes/{node}")).await.body;
        if body["power_state"] == "power off" && body["reservation"].is_null() {
            assert!(body["driver_internal_info"].get("ramdisk_booted").is_none(), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never powered off: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctx.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
