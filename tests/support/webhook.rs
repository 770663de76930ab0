//! A local webhook receiver for the war-room tests.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// A local Slack-compatible webhook: records each POST body; answers the first complete one with
/// 500 (so the notifier's retry is exercised) and the rest with 200.
pub async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    receiver_refusing("").await
}

/// The same, answering 500 to the first POST whose body contains `first_with` instead (the very
/// first when it is empty): that message arrives only with its retry, half a second later.
pub async fn receiver_refusing(first_with: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let first_with = first_with.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/war-room", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break Some(body.to_string());
                }
            };
            let refuse = first && body.as_deref().is_some_and(|b| b.contains(&first_with));
            let status = if refuse {
                first = false;
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if let Some(body) = body.filter(|_| status.starts_with("200")) {
                seen.lock().unwrap().push(body);
            }
            let response =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (url, bodies)
}
