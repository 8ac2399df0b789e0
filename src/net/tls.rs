//! TLS client setup on OpenSSL: trust store (system, see trust.rs, plus the cacerts folder),
//! TLS 1.2 or newer, RFC 6125 host checks, and failure classification.

use super::address::Host;
use crate::error::{CertProblem, MailError};
use crate::options::ClientCert;
use openssl::ex_data::Index;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslSession,
    SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

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

/// A client context for one cacerts folder state, reused while the folder is unchanged.
struct Cached {
    key: FolderKey,
    context: SslContext,
    loaded: usize,
    /// When the folder was last listed: at most once a second, so a
    /// burst of connects does not list and stat it every time.
    checked: Instant,
}

/// How stale the cacerts listing may be.
const FOLDER_RECHECK: Duration = Duration::from_secs(1);

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

/// TLS sessions to resume, by server and settings (a session made without
/// verification is never offered where verification is on). Each is used
/// once: TLS 1.3 tickets should not be reused (RFC 8446 C.4).
static SESSIONS: Mutex<Option<HashMap<String, SslSession>>> = Mutex::new(None);
/// Enough for many servers; beyond it the cache starts afresh.
const SESSIONS_MAX: usize = 1024;

fn session_index() -> Result<Index<Ssl, String>, MailError> {
    static INDEX: OnceLock<Result<Index<Ssl, String>, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().map_err(|e| e.to_string()))
        .clone()
        .map_err(MailError::TlsSetup)
}

fn session_key(host: &Host, port: u16, s: &TlsSettings) -> String {
    let cert = s
        .client_cert
        .as_ref()
        .map(|c| c.cert.as_str())
        .unwrap_or("");
    format!(
        "{}|{port}|{}|{}|{cert}",
        host.as_tls_name(),
        s.verify,
        s.fallback
    )
}

/// OpenSSL's read buffer with read-ahead: this much ciphertext per recv(2).
const TLS_READ_BUFFER: libc::size_t = 64 * 1024;

extern "C" {
    // libssl (OpenSSL 1.1.0 and later); openssl-sys does not declare it.
    fn SSL_CTX_set_default_read_buffer_len(ctx: *mut openssl_sys::SSL_CTX, len: libc::size_t);
}

fn build_context(dir: Option<&Path>) -> Result<(SslContext, usize), MailError> {
    let setup = |e: openssl::error::ErrorStack| MailError::TlsSetup(e.to_string());
    let mut b = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
    // What openssl's SslConnector::builder sets, except its trust store,
    // which parses the whole system bundle up front (see trust.rs).
    let mut opts = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    opts &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    b.set_options(opts);
    b.set_mode(
        SslMode::AUTO_RETRY | SslMode::ACCEPT_MOVING_WRITE_BUFFER | SslMode::ENABLE_PARTIAL_WRITE,
    );
    b.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")
        .map_err(setup)?;
    b.set_verify(SslVerifyMode::PEER);
    let system = super::trust::add_system_store(&mut b).map_err(setup)?;
    // Keep sessions ourselves, keyed by server and settings.
    b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL);
    let index = session_index()?;
    b.set_new_session_callback(move |ssl, session| {
        if let Some(key) = ssl.ex_data(index) {
            let mut cache = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
            let map = cache.get_or_insert_with(HashMap::new);
            if map.len() >= SESSIONS_MAX {
                map.clear();
            }
            map.insert(key.clone(), session);
        }
    });
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    // Read many records per recv(2) (servers often write 4 KiB records: two
    // syscalls each otherwise), and free the buffers of an idle session.
    b.set_read_ahead(true);
    b.set_mode(SslMode::RELEASE_BUFFERS);
    // SAFETY: a valid SSL_CTX owned by the builder; only sets a size.
    unsafe { SSL_CTX_set_default_read_buffer_len(b.as_ptr(), TLS_READ_BUFFER) };
    let mut loaded = 0;
    let mut subjects = Vec::new();
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
                let subject = cert.subject_name().to_owned().ok();
                // A certificate already in the store is not an error.
                if b.cert_store_mut().add_cert(cert).is_ok() {
                    loaded += 1;
                    subjects.extend(subject);
                }
            }
        }
    }
    super::trust::preload(&mut b, system, &subjects);
    Ok((b.build(), loaded))
}

/// What a handshake may accept and present.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub verify: bool,
    /// SECURE_FALLBACK: TLS 1.0 / 1.1 and legacy cipher suites for old servers.
    pub fallback: bool,
    pub client_cert: Option<ClientCert>,
}

/// Loads the client certificate, its chain and key, and checks they match.
fn load_client_cert(c: &ClientCert) -> Result<(X509, Vec<X509>, PKey<Private>), MailError> {
    let fail = |what: String| MailError::ClientCert(what);
    let read = |p: &str| std::fs::read(p).map_err(|e| fail(format!("cannot read {p}: {e}")));
    let bytes = read(&c.cert)?;
    let pass = c.password.as_deref().unwrap_or("");
    let looks_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    let (cert, chain, key) = if !looks_pem {
        let p12 = Pkcs12::from_der(&bytes)
            .map_err(|_| fail(format!("{} is neither PEM nor PKCS#12", c.cert)))?;
        let parsed = p12.parse2(pass).map_err(|e| {
            fail(format!(
                "cannot open the PKCS#12 file {} (wrong CERTPASS?): {e}",
                c.cert
            ))
        })?;
        let cert = parsed
            .cert
            .ok_or_else(|| fail(format!("{} holds no certificate", c.cert)))?;
        let key = parsed
            .pkey
            .ok_or_else(|| fail(format!("{} holds no private key", c.cert)))?;
        let chain = parsed
            .ca
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        (cert, chain, key)
    } else {
        let mut certs = X509::stack_from_pem(&bytes)
            .map_err(|_| fail(format!("{} holds no PEM certificate", c.cert)))?;
        if certs.is_empty() {
            return Err(fail(format!("{} holds no PEM certificate", c.cert)));
        }
        let cert = certs.remove(0);
        let key_path = c.key.as_deref().unwrap_or(&c.cert);
        let key_bytes = read(key_path)?;
        let key = match &c.password {
            Some(p) => PKey::private_key_from_pem_passphrase(&key_bytes, p.as_bytes()),
            None => PKey::private_key_from_pem(&key_bytes),
        }
        .map_err(|_| {
            fail(format!(
                "cannot read a private key from {key_path} (missing, or encrypted without the right CERTPASS)"
            ))
        })?;
        (cert, certs, key)
    };
    let matches = cert
        .public_key()
        .map(|pk| pk.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(fail(format!(
            "the private key does not belong to the certificate in {}",
            c.cert
        )));
    }
    Ok((cert, chain, key))
}

/// A ready-to-handshake `Ssl` for `host`, plus a note for the status proc.
pub fn client_ssl(
    host: &Host,
    port: u16,
    settings: &TlsSettings,
) -> Result<(Ssl, String), MailError> {
    let verify = settings.verify;
    let client = settings
        .client_cert
        .as_ref()
        .map(load_client_cert)
        .transpose()?;
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = cache
        .as_ref()
        .is_some_and(|c| c.checked.elapsed() < FOLDER_RECHECK);
    if !fresh {
        let key = folder_key();
        match cache.as_mut() {
            Some(c) if c.key == key => c.checked = Instant::now(),
            _ => {
                let (context, loaded) = build_context(key.0.as_deref())?;
                if cache.is_some() {
                    // The trusted set changed: a session kept from before
                    // would resume without its certificate being checked
                    // against the new one (a CA removed to distrust it).
                    *SESSIONS.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                *cache = Some(Cached {
                    key,
                    context,
                    loaded,
                    checked: Instant::now(),
                });
            }
        }
    }
    let cached = cache.as_ref().expect("filled above");
    let setup = |e: openssl::error::ErrorStack| MailError::TlsSetup(e.to_string());
    let mut ssl = Ssl::new(&cached.context).map_err(setup)?;
    let name = host.as_tls_name();
    let ip = name.parse::<IpAddr>().ok();
    if ip.is_none() {
        // SNI carries names only (RFC 6066 3).
        ssl.set_hostname(&name).map_err(setup)?;
    }
    if verify {
        let param = ssl.param_mut();
        // RFC 6125: only subjectAltName counts; a wildcard is a whole left-most label.
        param.set_hostflags(
            X509CheckFlags::NO_PARTIAL_WILDCARDS | X509CheckFlags::NEVER_CHECK_SUBJECT,
        );
        match ip {
            Some(ip) => param.set_ip(ip),
            None => param.set_host(&name),
        }
        .map_err(setup)?;
    } else {
        ssl.set_verify(SslVerifyMode::NONE);
    }
    let session_key = session_key(host, port, settings);
    let saved = SESSIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&session_key));
    if let Some(session) = saved {
        // SAFETY: the session came from this same connector (same method).
        unsafe { ssl.set_session(&session) }.map_err(setup)?;
    }
    ssl.set_ex_data(session_index()?, session_key);
    if settings.fallback {
        // Old servers: TLS 1.0 and SHA-1 / legacy suites need security level 0.
        ssl.set_min_proto_version(Some(SslVersion::TLS1))
            .map_err(setup)?;
        ssl.set_security_level(0);
        ssl.set_cipher_list("DEFAULT:@SECLEVEL=0").map_err(setup)?;
    }
    if let Some((cert, chain, key)) = &client {
        let bad = |e: openssl::error::ErrorStack| MailError::ClientCert(e.to_string());
        ssl.set_certificate(cert).map_err(bad)?;
        ssl.set_private_key(key).map_err(bad)?;
        for c in chain {
            ssl.add_chain_cert(c.clone()).map_err(bad)?;
        }
    }
    let mut note = match (&cached.key.0, verify) {
        (_, false) => {
            "certificate verification is off (verify = kFalse or TRUSTEDSITE)".to_string()
        }
        (Some(d), true) => format!(
            "verifying against the system store and {} certificate(s) from {}",
            cached.loaded,
            d.display()
        ),
        (None, true) => "verifying against the system store".to_string(),
    };
    if settings.fallback {
        note.push_str("; TLS 1.0 and legacy suites allowed (SECURE_FALLBACK)");
    }
    if client.is_some() {
        note.push_str("; client certificate ready");
    }
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
