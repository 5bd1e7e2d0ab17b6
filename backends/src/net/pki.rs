//! What `pluto pki` runs: the private CA for internal links and one certificate per node.
//!
//! `pluto pki --out DIR NAME…` makes `DIR/ca.pem` + `DIR/ca-key.pem` when they do not
//! exist yet, then `DIR/NAME.pem` + `DIR/NAME-key.pem` for each node name, signed by
//! the CA and valid for the name itself, `localhost`, 127.0.0.1 and ::1 (plus any
//! `--san`). Keys are written with mode 0600. Existing node files are kept unless
//! `--force`.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::tls::NodeTlsError as PkiError;

fn pki_err(e: rcgen::Error) -> PkiError {
    PkiError::Config(format!("certificate generation: {e}"))
}

fn io_err(path: &Path, e: std::io::Error) -> PkiError {
    PkiError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    crate::fsutil::write_atomic_mode(path, bytes, mode).map_err(|e| io_err(path, e))
}

/// A node name usable in a certificate and as a file name.
fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(PkiError::Name(format!(
            "{name} (use letters, digits, '-' and '.': a DNS name)"
        )))
    }
}

/// Creates the CA (if missing) and certificates for `names`. Returns the files written.
pub fn generate(
    out: &Path,
    names: &[String],
    extra_sans: &[String],
    force: bool,
) -> Result<Vec<String>, PkiError> {
    for name in names {
        check_name(name)?;
    }
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let ca_cert_path = out.join("ca.pem");
    let ca_key_path = out.join("ca-key.pem");
    let mut written = Vec::new();
    let (ca_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| io_err(p, e));
        let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(pki_err)?;
        (read(&ca_cert_path)?, key)
    } else {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "pluto internal CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(pki_err)?;
        let cert = params.self_signed(&key).map_err(pki_err)?;
        write_atomic(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&ca_cert_path, cert.pem().as_bytes(), 0o644)?;
        written.push(ca_cert_path.display().to_string());
        (cert.pem(), key)
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(pki_err)?;
    for name in names {
        let cert_path = out.join(format!("{name}.pem"));
        let key_path = out.join(format!("{name}-key.pem"));
        if cert_path.exists() && !force {
            continue;
        }
        let mut sans = vec![
            name.clone(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        sans.extend(extra_sans.iter().cloned());
        let mut params = CertificateParams::new(sans).map_err(pki_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.clone());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(pki_err)?;
        let cert = params.signed_by(&key, &issuer).map_err(pki_err)?;
        write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
        written.push(cert_path.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn makes_a_ca_and_node_certificates_and_keeps_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["worker1".to_owned(), "gw1".to_owned()];
        let written = generate(dir.path(), &names, &[], false).unwrap();
        assert_eq!(written.len(), 3);
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        // A second run for a new node keeps the CA.
        generate(dir.path(), &["storage1".to_owned()], &[], false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
        assert!(dir.path().join("storage1-key.pem").exists());
        assert!(generate(dir.path(), &["../evil".to_owned()], &[], false).is_err());
    }
}
