//! `tls_verify` against a real HTTPS receiver on 127.0.0.1 with a self-signed certificate.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::backend_test;
use crate::support::{spawn_app, Backend};

/// An HTTPS receiver with a self-signed certificate for 127.0.0.1 that answers every request
/// with 200 and keeps the request bodies.
struct TlsReceiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl TlsReceiver {
    async fn start() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("self-signed certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("TLS server configuration");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/tls", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = bodies.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, kept) = (acceptor.clone(), kept.clone());
                tokio::spawn(async move {
                    // A refused handshake (the client does not trust us) just ends this task.
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        while let Some(body) = read_request(&mut tls).await {
                            kept.lock().unwrap().push(body);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if tls.write_all(ok).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        Self { url, bodies }
    }
}

/// Reads one HTTP/1.1 request with a `content-length` body and returns the body as JSON.
async fn read_request(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Value> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    serde_json::from_slice(&buf[head_end..head_end + length]).ok()
}

backend_test!(tls_verify_refuses_a_self_signed_receiver_unless_turned_off);
async fn tls_verify_refuses_a_self_signed_receiver_unless_turned_off(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TlsReceiver::start().await;
    app.create_webhook(
        json!({"name": "strict", "url": rx.url, "events": [{"type": "tls.strict"}],
        "retry_schedule": [3600]}),
    )
    .await;
    app.create_webhook(
        json!({"name": "insecure", "url": rx.url, "tls_verify": false,
        "events": [{"type": "tls.insecure"}]}),
    )
    .await;

    let (_, out) = app.post("/events", json!({"type": "tls.strict"})).await;
    let dlv = app.deliveries_of(out["id"].as_str().unwrap()).await[0]["id"].clone();
    let d = app
        .wait_delivery(dlv.as_str().unwrap(), |d| d["status"] == "retrying")
        .await;
    assert_eq!(d["attempts"][0]["error_kind"], "tls", "{d}");
    assert!(
        rx.bodies.lock().unwrap().is_empty(),
        "nothing was sent over an untrusted connection"
    );

    let (_, out) = app
        .post("/events", json!({"type": "tls.insecure", "data": {"n": 1}}))
        .await;
    let dlv = app.deliveries_of(out["id"].as_str().unwrap()).await[0]["id"].clone();
    app.wait_delivery(dlv.as_str().unwrap(), |d| d["status"] == "succeeded")
        .await;
    let bodies = rx.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["data"], json!({"n": 1}));
}
