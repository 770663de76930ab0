//! Command lines and readiness checks for etcd and kube-apiserver.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Loopback ports for one control plane.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
}

impl Ports {
    /// Lets the kernel pick three distinct free ports, then releases them for the servers.
    /// Another process may grab one in between: the caller retries on "address already in use".
    pub fn pick() -> Result<Ports> {
        let bind = || TcpListener::bind("127.0.0.1:0").context("binding a free loopback port");
        let (a, b, c) = (bind()?, bind()?, bind()?);
        Ok(Ports {
            etcd_client: a.local_addr()?.port(),
            etcd_peer: b.local_addr()?.port(),
            apiserver: c.local_addr()?.port(),
        })
    }
}

/// etcd flags as used by controller-runtime's envtest, single member, no fsync.
pub fn etcd_args(ports: Ports, data_dir: &Path) -> Vec<OsString> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let mut args: Vec<OsString> = [
        "--name=testenv".to_string(),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=testenv={peer}"),
        "--unsafe-no-fsync=true".to_string(),
    ]
    .map(OsString::from)
    .into();
    let mut data = OsString::from("--data-dir=");
    data.push(data_dir);
    args.push(data);
    args
}

/// kube-apiserver flags (see /work/shared/TESTENV.md); `pki` holds the files from `certs.rs`.
pub fn apiserver_args(ports: Ports, pki: &Path) -> Vec<OsString> {
    let p = ports.apiserver;
    let file = |flag: &str, name: &str| {
        let mut arg = OsString::from(format!("--{flag}="));
        arg.push(pki.join(name));
        arg
    };
    let mut args: Vec<OsString> = [
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        format!("--secure-port={p}"),
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".to_string(),
        "--service-cluster-ip-range=10.0.0.0/24".to_string(),
        "--allow-privileged=true".to_string(),
        "--disable-admission-plugins=ServiceAccount".to_string(),
        "--authorization-mode=RBAC".to_string(),
        // Needed on 1.37+ for a loopback advertise address; harmless before.
        "--endpoint-reconciler-type=none".to_string(),
        format!("--service-account-issuer=https://127.0.0.1:{p}/"),
    ]
    .map(OsString::from)
    .into();
    args.extend([
        file("cert-dir", ""),
        file("service-account-key-file", "sa.pub"),
        file("service-account-signing-key-file", "sa.key"),
        file("client-ca-file", "client-ca.crt"),
        file("tls-cert-file", "apiserver.crt"),
        file("tls-private-key-file", "apiserver.key"),
    ]);
    args
}

/// True when etcd answers `GET /health` with HTTP 200 (a tiny raw HTTP/1.0 request).
pub async fn etcd_healthy(port: u16) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(response)) => {
            let status_line = response.split(|&b| b == b'\n').next().unwrap_or_default();
            String::from_utf8_lossy(status_line).contains(" 200 ")
        }
        _ => false,
    }
}

/// True when `/healthz` says `ok` and the `default` namespace exists.
pub async fn apiserver_ready(client: &kube::Client) -> bool {
    let probe = async {
        let request = http::Request::get("/healthz").body(Vec::new()).ok()?;
        let health = client.request_text(request).await.ok()?;
        if health.trim() != "ok" {
            return None;
        }
        Api::<Namespace>::all(client.clone())
            .get_opt("default")
            .await
            .ok()
            .flatten()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), probe).await,
        Ok(Some(_))
    )
}
