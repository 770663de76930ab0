//! Throw-away PKI for one control plane, generated with rcgen (ECDSA P-256 everywhere).
//!
//! Files written into the apiserver's cert dir:
//! - `serving-ca.crt`                     CA that signed the apiserver's serving certificate
//! - `apiserver.crt` / `apiserver.key`   serving certificate (SANs `localhost`, `127.0.0.1`)
//! - `client-ca.crt`                      CA the apiserver trusts for client certificates
//! - `admin.crt` / `admin.key`           client certificate `CN=admin, O=system:masters`
//! - `sa.key` / `sa.pub`                  service-account token signing key pair

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The PEM material a kubeconfig needs; everything else only lives in files.
pub struct Pki {
    pub serving_ca_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

/// A self-signed CA able to sign leaf certificates.
fn new_ca(common_name: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?; // ECDSA P-256 with SHA-256 is rcgen's default
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A leaf certificate signed by `issuer`; returns (cert PEM, PKCS#8 key PEM).
fn new_leaf(
    issuer: &Issuer<'_, KeyPair>,
    sans: &[&str],
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generates all certificates and keys and writes them into `dir` (created if missing).
pub fn generate(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    };

    let (serving_ca_pem, serving_ca) = new_ca("liftoff-testenv-serving-ca")?;
    let (serving_cert, serving_key) = new_leaf(
        &serving_ca,
        &["localhost", "127.0.0.1"],
        "kube-apiserver",
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write("serving-ca.crt", &serving_ca_pem)?;
    write("apiserver.crt", &serving_cert)?;
    write("apiserver.key", &serving_key)?;

    let (client_ca_pem, client_ca) = new_ca("liftoff-testenv-client-ca")?;
    let (admin_cert_pem, admin_key_pem) = new_leaf(
        &client_ca,
        &[],
        "admin",
        Some("system:masters"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    write("client-ca.crt", &client_ca_pem)?;
    write("admin.crt", &admin_cert_pem)?;
    write("admin.key", &admin_key_pem)?;

    let sa = KeyPair::generate()?;
    write("sa.key", &sa.serialize_pem())?;
    write("sa.pub", &sa.public_key_pem())?;

    Ok(Pki {
        serving_ca_pem,
        admin_cert_pem,
        admin_key_pem,
    })
}

impl Pki {
    /// A kubeconfig for `server` with all certificate data embedded (usable by kubectl and kube).
    pub fn kubeconfig_yaml(&self, server: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: liftoff-testenv
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: liftoff-testenv
  context:
    cluster: liftoff-testenv
    user: admin
current-context: liftoff-testenv
",
            ca = b64(&self.serving_ca_pem),
            cert = b64(&self.admin_cert_pem),
            key = b64(&self.admin_key_pem),
        )
    }
}
