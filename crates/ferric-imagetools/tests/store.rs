//! The content-addressed image store: import from files and over HTTP
//! (a tiny in-test server on 127.0.0.1), dedupe, names, lookup, deletion.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ferric_image::format::ImageFormat;
use ferric_imagetools::store::{ImageStore, StoreError};
use sha2::Digest;

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A qcow2 v3 header announcing `size` bytes (enough for detection).
fn qcow2_header(size: u64) -> Vec<u8> {
    let mut header = vec![0u8; 1024];
    header[..4].copy_from_slice(b"QFI\xfb");
    header[4..8].copy_from_slice(&3u32.to_be_bytes());
    header[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster bits
    header[24..32].copy_from_slice(&size.to_be_bytes());
    header
}

#[test]
fn import_dedupe_lookup_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let source = write(dir.path(), "disk.img", &data);

    let first = store.create_from_file(&source, Some("base".into())).unwrap();
    assert_eq!(first.size, data.len() as u64);
    assert_eq!(first.sha256, format!("{:x}", sha2::Sha256::digest(&data)));
    assert_eq!(first.sha512, format!("{:x}", sha2::Sha512::digest(&data)));
    assert_eq!(first.format, ImageFormat::Raw);
    assert_eq!(first.virtual_size, Some(data.len() as u64));
    assert!(first.source.starts_with("file:///"), "{}", first.source);
    assert!(time::OffsetDateTime::parse(
        &first.created_at,
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    let blob = store.path(&first);
    assert_eq!(blob, dir.path().join("images/sha256").join(&first.sha256));
    assert_eq!(std::fs::read(&blob).unwrap(), data);

    // Same content again: a second record, one file.
    let second = store.create_from_file(&source, None).unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(first.sha256, second.sha256);
    assert_eq!(files_in(&dir.path().join("images/sha256")), vec![first.sha256.clone()]);
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(files_in(&dir.path().join("images/tmp")), Vec::<String>::new());

    // Names are unique.
    match store.create_from_file(&source, Some("base".into())) {
        Err(StoreError::NameTaken(name)) => assert_eq!(name, "base"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.create_from_file(&source, Some(String::new())),
        Err(StoreError::InvalidName { .. })
    ));
    assert_eq!(store.list().unwrap().len(), 2);

    // Lookup by id, name, hash prefix.
    assert_eq!(store.get(&first.id.to_string()).unwrap(), first);
    assert_eq!(store.get("base").unwrap(), first);
    assert!(matches!(store.get(&first.sha256[..12]), Err(StoreError::Ambiguous { .. })));
    assert!(matches!(store.get("nope"), Err(StoreError::NotFound(_))));

    // Deleting one record keeps the shared file; deleting the last removes it.
    assert_eq!(store.delete("base").unwrap().id, first.id);
    assert!(blob.exists());
    assert_eq!(store.get(&format!("sha256:{}", &first.sha256[..10])).unwrap(), second);
    assert!(matches!(store.delete("base"), Err(StoreError::NotFound(_))));
    store.delete(&second.id.to_string()).unwrap();
    assert!(!blob.exists());
    assert!(store.list().unwrap().is_empty());
    // The name is free again.
    store.create_from_file(&source, Some("base".into())).unwrap();
}

#[test]
fn formats_and_virtual_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    let qcow2 = write(dir.path(), "a.qcow2", &qcow2_header(10 << 30));
    let record = store.create_from_file(&qcow2, None).unwrap();
    assert_eq!(record.format, ImageFormat::Qcow2);
    assert_eq!(record.virtual_size, Some(10 << 30));

    let gz = write(dir.path(), "a.img.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    let record = store.create_from_file(&gz, None).unwrap();
    assert_eq!(record.format, ImageFormat::Gzip);
    assert_eq!(record.virtual_size, None);

    // Formats that would be written byte for byte by mistake are refused.
    let vmdk = write(dir.path(), "a.vmdk", b"KDMV\x01\0\0\0 and more");
    assert!(matches!(store.create_from_file(&vmdk, None), Err(StoreError::UnsupportedFormat(_))));
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(files_in(&dir.path().join("store/tmp")), Vec::<String>::new());

    // The record on disk is plain JSON with the documented fields.
    let meta = dir.path().join("store/meta").join(format!("{}.json", record.id));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    assert_eq!(json["format"], "gzip");
    assert_eq!(json["sha256"], record.sha256);
}

/// Serves `body` for GET /image.img, 404 otherwise, for `requests` requests.
async fn serve(body: Vec<u8>, requests: usize) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..requests {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = socket.read(&mut buffer).await.unwrap();
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            let text = String::from_utf8_lossy(&request);
            if text.starts_with("GET /image.img") {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                socket.write_all(head.as_bytes()).await.unwrap();
                for chunk in body.chunks(65536) {
                    socket.write_all(chunk).await.unwrap();
                }
            } else {
                socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await
                    .unwrap();
            }
            let _ = socket.shutdown().await;
        }
    });
    (format!("http://{address}"), task)
}

#[tokio::test]
async fn import_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    let mut body = qcow2_header(1 << 30);
    body.extend((0..2_000_000u32).map(|i| (i % 13) as u8));
    let (base, server) = serve(body.clone(), 2).await;

    let record = store
        .create_from_url(&format!("{base}/image.img?token=secret"), Some("net".into()))
        .await
        .unwrap();
    assert_eq!(record.size, body.len() as u64);
    assert_eq!(record.sha256, format!("{:x}", sha2::Sha256::digest(&body)));
    assert_eq!(record.format, ImageFormat::Qcow2);
    assert_eq!(record.virtual_size, Some(1 << 30));
    assert!(!record.source.contains("secret"), "{}", record.source);
    assert_eq!(std::fs::read(store.path(&record)).unwrap(), body);

    let error = store.create_from_url(&format!("{base}/missing"), None).await.unwrap_err();
    assert!(matches!(error, StoreError::Download { .. }), "{error}");
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(files_in(&dir.path().join("store/tmp")), Vec::<String>::new());
    server.await.unwrap();

    // Nobody listening: a download error, nothing stored.
    let error = store.create_from_url(&base, None).await.unwrap_err();
    assert!(matches!(error, StoreError::Download { .. }), "{error}");
    assert_eq!(store.list().unwrap().len(), 1);
}
