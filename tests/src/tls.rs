//! A throw-away certificate authority for TLS tests, made with the `openssl` command line.
//!
//! Each test makes its own CA in a scratch directory and issues server certificates for the
//! names it needs (`localhost`, `127.0.0.1`), so trust is exactly what the test says: the
//! system's CAs never vouch for these, and another test's CA does not either.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::scratch_dir;

/// A CA key and certificate in a scratch directory.
pub struct TestCa {
    dir: tempfile::TempDir,
    pub cert: PathBuf,
    key: PathBuf,
}

/// A server certificate and key issued by a [`TestCa`].
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl TestCa {
    /// A new CA named `name` (its subject's CN).
    pub fn new(name: &str) -> Result<Self> {
        let dir = scratch_dir(&format!("ca-{name}"))?;
        let cert = dir.path().join("ca.pem");
        let key = dir.path().join("ca.key");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            dir.path(),
        )?;
        Ok(Self { dir, cert, key })
    }

    /// A server certificate for `names` (DNS names and IP addresses), CN = the first.
    pub fn issue(&self, file: &str, names: &[&str]) -> Result<ServerCert> {
        let dir = self.dir.path();
        let san: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            dir.join(format!("{file}.ext")),
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
                san.join(",")
            ),
        )?;
        let (key, csr, cert) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.pem"),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={}", names[0]),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            dir,
        )?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{file}.ext"),
                "-out",
                &cert,
            ],
            dir,
        )?;
        let _ = &self.key;
        Ok(ServerCert {
            cert: dir.join(cert),
            key: dir.join(key),
        })
    }
}
