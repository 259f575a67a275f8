//! Container health check for the dsobel image (the runtime image has no shell,
//! curl or wget). GETs /healthz on the port the process listens on and exits 0
//! on an HTTP 200, 1 otherwise. The port comes from DSOBEL_HEALTH_LISTEN (worker)
//! or DSOBEL_LISTEN (serve), else 8080. Built with plain rustc, std only.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

fn port() -> u16 {
    ["DSOBEL_HEALTH_LISTEN", "DSOBEL_LISTEN"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter_map(|v| v.rsplit(':').next().and_then(|p| p.trim().parse().ok()))
        .next()
        .unwrap_or(8080)
}

fn check(port: u16) -> std::io::Result<bool> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        let r = s.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line = String::from_utf8_lossy(&head[..n]);
    Ok(line.starts_with("HTTP/1.") && line.get(9..12) == Some("200"))
}

fn main() -> ExitCode {
    match check(port()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("healthcheck: /healthz did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}
