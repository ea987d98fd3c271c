//! A one-route HTTP/1.1 server for HTTP tasks to call: every request is answered with a JSON echo
//! of its method, path, headers and body (status 200, or 503 for paths under `/fail`). One request
//! per connection. [`serve`] takes any stream, so a test can put TLS in front.

use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A plain-HTTP echo server on a free loopback port; returns `http://127.0.0.1:PORT`.
pub async fn plain() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    format!("http://{addr}")
}

/// Reads one request from `stream` and answers it with its echo.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let Some((head, body)) = read_request(&mut stream).await else { return };
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (first.next().unwrap_or_default(), first.next().unwrap_or_default());
    let headers: Map<String, Value> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), Value::String(v.trim().to_owned())))
        .collect();
    let reply = json!({"method": method, "path": path, "headers": headers, "body": body}).to_string();
    let status = if path.starts_with("/fail") { "503 Service Unavailable" } else { "200 OK" };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request's head and body (as far as `Content-Length` says), or `None` if the peer left.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0usize);
        while buf.len() < end + 4 + length {
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        return Some((head, String::from_utf8_lossy(&buf[end + 4..]).into_owned()));
    }
}

/// A plain-HTTP server on a free loopback port that keeps the head of every request it gets
/// (request line and headers) and answers `{"received": true}`, echoing nothing back. Returns
/// its URL and the heads so far.
pub async fn recording() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let kept = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let Some((head, _)) = read_request(&mut stream).await else { return };
                kept.lock().expect("heads").push(head);
                let reply = r#"{"received": true}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), heads)
}
