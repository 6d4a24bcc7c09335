//! The boot server over real HTTP on 127.0.0.1, fetched with curl (the
//! real client the issue names) where it is installed.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use ferric_httpboot::{router, BootBackend, BootSettings};
use ferric_types::{HardwareType, Node, ProvisionState};

struct OneNode(Node);

#[async_trait::async_trait]
impl BootBackend for OneNode {
    async fn node_by_mac(&self, mac: &str) -> Result<Option<Node>, String> {
        Ok((mac == "52:54:00:00:00:01").then(|| self.0.clone()))
    }
}

fn curl(args: &[&str]) -> Option<(String, String)> {
    let output = Command::new("curl").args(["-s", "-S", "-D", "-"]).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Some((head.to_owned(), body.to_owned()))
}

#[tokio::test]
async fn scripts_and_ranges_over_http() {
    let root = std::env::temp_dir().join(format!("ferric-httpboot-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(root.join("agent")).unwrap();
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("agent/vmlinuz"), &content).unwrap();
    let mut node =
        Node::new(uuid::Uuid::new_v4(), HardwareType::FakeHardware, ProvisionState::CleanWait);
    node.driver_info.insert("deploy_kernel".into(), "agent/vmlinuz".into());
    node.driver_info.insert("deploy_ramdisk".into(), "agent/ramdisk".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = BootSettings {
        api_url: "http://198.18.0.1:6385".into(),
        file_base_url: base.clone(),
        kernel_append: String::new(),
    };
    let app = router(Arc::new(OneNode(node)), settings, root.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let base_for_curl = base.clone();
    let checks = tokio::task::spawn_blocking(move || {
        let base = base_for_curl;
        if Command::new("curl").arg("--version").output().is_err() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("curl is required under CI");
            }
            eprintln!("skipping: curl is not installed");
            return;
        }
        let (head, body) = curl(&[&format!("{base}/boot/52-54-00-00-00-01.ipxe")]).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.starts_with("#!ipxe\n"), "{body}");
        assert!(body.contains(&format!("kernel {base}/files/agent/vmlinuz")), "{body}");
        let (head, _) = curl(&[&format!("{base}/boot/52:54:00:00:00:99.ipxe")]).unwrap();
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, _) = curl(&[&format!("{base}/boot/nonsense")]).unwrap();
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        // Whole file, then a range, then a conditional request.
        let output = Command::new("curl")
            .args(["-s", &format!("{base}/files/agent/vmlinuz")])
            .output()
            .unwrap();
        assert_eq!(output.stdout.len(), 100_000);
        let output = Command::new("curl")
            .args(["-s", "-r", "1000-1999", &format!("{base}/files/agent/vmlinuz")])
            .output()
            .unwrap();
        assert_eq!(output.stdout, (1000..2000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let (head, _) = curl(&["-r", "200000-", &format!("{base}/files/agent/vmlinuz")]).unwrap();
        assert!(head.starts_with("HTTP/1.1 416"), "{head}");
        let (head, _) = curl(&["-I", &format!("{base}/files/agent/vmlinuz")]).unwrap();
        let etag =
            head.lines().find_map(|line| line.strip_prefix("etag: ")).unwrap().trim().to_owned();
        let (head, _) = curl(&[
            "-H",
            &format!("If-None-Match: {etag}"),
            &format!("{base}/files/agent/vmlinuz"),
        ])
        .unwrap();
        assert!(head.starts_with("HTTP/1.1 304"), "{head}");
        for escape in
            ["/files/../../etc/passwd", "/files/%2e%2e/%2e%2e/etc/passwd", "/files/agent/missing"]
        {
            let (head, _) = curl(&["--path-as-is", &format!("{base}{escape}")]).unwrap();
            assert!(head.starts_with("HTTP/1.1 404"), "{escape}: {head}");
        }
    });
    checks.await.unwrap();
    server.abort();
    let _ = std::fs::remove_dir_all(root);
}
