//! TLS client setup on OpenSSL: trust store (system plus the cacerts folder),
//! TLS 1.2 or newer, RFC 6125 host checks, and failure classification.

use super::address::Host;
use crate::error::{CertProblem, MailError};
use openssl::ssl::{Ssl, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Environment variable naming the cacerts folder (overrides the default).
pub const CACERTS_ENV: &str = "MAILEXT_CACERTS";

/// The cacerts folder: `$MAILEXT_CACERTS`, else `cacerts` beside the library.
pub fn cacerts_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CACERTS_ENV) {
        return Some(PathBuf::from(p));
    }
    library_path().and_then(|p| p.parent().map(|d| d.join("cacerts")))
}

/// The path of the loaded plugin library (dladdr on one of our functions).
fn library_path() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = library_path as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

/// A connector for one cacerts folder state, reused while the folder is unchanged.
struct Cached {
    key: FolderKey,
    connector: SslConnector,
    loaded: usize,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// The folder and every file in it with its size and time, so replacing a
/// certificate in place is noticed too.
type FolderKey = (Option<PathBuf>, Vec<(PathBuf, u64, Option<SystemTime>)>);

fn folder_key() -> FolderKey {
    let dir = cacerts_dir();
    let mut files: Vec<_> = dir
        .as_deref()
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.metadata()
                .ok()
                .map(|m| (e.path(), m.len(), m.modified().ok()))
        })
        .collect();
    files.sort();
    (dir, files)
}

fn build_connector(dir: Option<&Path>) -> Result<(SslConnector, usize), MailError> {
    let setup = |e: openssl::error::ErrorStack| MailError::TlsSetup(e.to_string());
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(setup)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    b.set_default_verify_paths().map_err(setup)?;
    let mut loaded = 0;
    if let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let certs = X509::stack_from_pem(&bytes)
                .ok()
                .filter(|c| !c.is_empty())
                .or_else(|| X509::from_der(&bytes).ok().map(|c| vec![c]));
            for cert in certs.unwrap_or_default() {
                // A certificate already in the store is not an error.
                if b.cert_store_mut().add_cert(cert).is_ok() {
                    loaded += 1;
                }
            }
        }
    }
    Ok((b.build(), loaded))
}

/// A ready-to-handshake `Ssl` for `host`, plus a note for the status proc.
pub fn client_ssl(host: &Host, verify: bool) -> Result<(Ssl, String), MailError> {
    let key = folder_key();
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if cache.as_ref().map(|c| &c.key) != Some(&key) {
        let (connector, loaded) = build_connector(key.0.as_deref())?;
        *cache = Some(Cached {
            key: key.clone(),
            connector,
            loaded,
        });
    }
    let cached = cache.as_ref().expect("filled above");
    let setup = |e: openssl::error::ErrorStack| MailError::TlsSetup(e.to_string());
    let mut config = cached.connector.configure().map_err(setup)?;
    config.set_verify_hostname(verify);
    if !verify {
        config.set_verify(SslVerifyMode::NONE);
    }
    let name = host.as_tls_name();
    let mut ssl = config.into_ssl(&name).map_err(setup)?;
    if verify {
        // RFC 6125: only subjectAltName counts; a wildcard is a whole left-most label.
        ssl.param_mut().set_hostflags(
            X509CheckFlags::NO_PARTIAL_WILDCARDS | X509CheckFlags::NEVER_CHECK_SUBJECT,
        );
    }
    let note = match (&key.0, verify) {
        (_, false) => "certificate verification is off (verify = kFalse)".to_string(),
        (Some(d), true) => format!(
            "verifying against the system store and {} certificate(s) from {}",
            cached.loaded,
            d.display()
        ),
        (None, true) => "verifying against the system store".to_string(),
    };
    Ok((ssl, note))
}

/// Turns a failed handshake into the error the caller sees.
pub fn classify_failure(verify: X509VerifyResult, detail: &str, host: &str) -> MailError {
    if verify == X509VerifyResult::OK {
        // OpenSSL's words for "these bytes are not TLS records".
        let not_tls = [
            "wrong version number",
            "packet length too long",
            "record layer failure",
        ];
        if not_tls.iter().any(|w| detail.contains(w)) {
            return MailError::TlsHandshake(format!("{host} did not answer with TLS ({detail})"));
        }
        return MailError::TlsHandshake(detail.to_string());
    }
    let raw = verify.as_raw();
    let problem = match raw {
        openssl_sys::X509_V_ERR_CERT_HAS_EXPIRED | openssl_sys::X509_V_ERR_CERT_NOT_YET_VALID => {
            CertProblem::Expired
        }
        openssl_sys::X509_V_ERR_HOSTNAME_MISMATCH
        | openssl_sys::X509_V_ERR_IP_ADDRESS_MISMATCH
        | openssl_sys::X509_V_ERR_EMAIL_MISMATCH => CertProblem::NameMismatch,
        _ => CertProblem::Untrusted,
    };
    MailError::cert(problem, format!("{} (for {host})", verify.error_string()))
}
