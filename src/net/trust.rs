//! The system trust store, without parsing all of it up front.
//!
//! OpenSSL's default verify paths parse every certificate of the system
//! bundle (about 140 on Debian; OpenSSL 3 decodes each public key) when a
//! context is made: 40-70 ms and about 1 MB before the first TLS handshake,
//! and again whenever the cacerts folder changes. Here the bundle is only
//! split into certificates and indexed by subject name (base64 and a walk
//! of the DER header, no key decoding) the first time OpenSSL asks for an
//! issuer it does not hold, and only the certificates it asks for are
//! parsed and added to the store. The hashed directory lookup follows, as
//! with the default paths, so the trusted set is the same.
//!
//! A bundle with anything but plain `CERTIFICATE` blocks (OpenSSL's
//! `TRUSTED CERTIFICATE` carries trust settings, a CRL is no issuer) falls
//! back to OpenSSL's own loading, and so does an OpenSSL older than 1.1.1.
//!
//! OpenSSL consults lookups only for a subject its store holds nothing
//! for, so a certificate added up front (the cacerts folder) would hide a
//! bundle CA of the same subject: `preload` adds those bundle CAs too, as
//! loading the whole bundle did.

use foreign_types_shared::{ForeignType, ForeignTypeRef};
use openssl::ssl::SslContextBuilder;
use openssl::x509::{X509Name, X509NameRef, X509};
use openssl_sys as ffi;
use std::cmp::Ordering;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

type GetBySubject = unsafe extern "C" fn(
    *mut ffi::X509_LOOKUP,
    c_int,
    *const ffi::X509_NAME,
    *mut ffi::X509_OBJECT,
) -> c_int;

extern "C" {
    // libcrypto 1.1.0 and later; openssl-sys does not declare these.
    fn X509_LOOKUP_meth_new(name: *const c_char) -> *mut ffi::X509_LOOKUP_METHOD;
    fn X509_LOOKUP_meth_set_get_by_subject(
        method: *mut ffi::X509_LOOKUP_METHOD,
        f: GetBySubject,
    ) -> c_int;
    fn X509_LOOKUP_get_store(lookup: *const ffi::X509_LOOKUP) -> *mut ffi::X509_STORE;
    fn X509_OBJECT_set1_X509(obj: *mut ffi::X509_OBJECT, x: *mut ffi::X509) -> c_int;
    fn X509_STORE_lock(store: *mut ffi::X509_STORE) -> c_int;
    fn X509_STORE_unlock(store: *mut ffi::X509_STORE) -> c_int;
    fn X509_OBJECT_retrieve_by_subject(
        objects: *mut ffi::stack_st_X509_OBJECT,
        kind: c_int,
        name: *const ffi::X509_NAME,
    ) -> *mut ffi::X509_OBJECT;
    fn ERR_set_mark() -> c_int;
    fn ERR_pop_to_mark() -> c_int;
}

/// OpenSSL 1.1.1: its store hands a lookup an initialised result object.
const LAZY_MIN_VERSION: std::os::raw::c_ulong = 0x1010_1000;

/// X509_LU_X509: a lookup for certificates (not CRLs).
const LOOKUP_CERT: c_int = 1;

/// One certificate of the bundle: its subject, and its DER for parsing later.
struct Entry {
    subject: X509Name,
    der: Vec<u8>,
}

/// The bundle as read when the context was made, indexed on first use.
struct Bundle {
    pem: Vec<u8>,
    index: OnceLock<Vec<Entry>>,
}

impl Bundle {
    fn entries(&self) -> &[Entry] {
        self.index.get_or_init(|| index(&self.pem))
    }
}

/// The bundle the lookup serves: the one read by the newest context.
static CURRENT: Mutex<Option<Arc<Bundle>>> = Mutex::new(None);

/// How `add_system_store` set the store up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemStore {
    /// The bundle through our lookup: see `preload`.
    OnDemand,
    /// OpenSSL's default paths, the whole bundle read.
    Loaded,
}

/// Adds the system trust store to `b`: the bundle file (lazily) and the
/// hashed directory, from `SSL_CERT_FILE` / `SSL_CERT_DIR` or OpenSSL's
/// defaults. Errors only if OpenSSL cannot make a lookup.
pub fn add_system_store(
    b: &mut SslContextBuilder,
) -> Result<SystemStore, openssl::error::ErrorStack> {
    let pem = bundle_path().and_then(|p| std::fs::read(p).ok());
    let plain = pem.as_deref().is_none_or(only_certificates);
    // SAFETY: a plain version query.
    if !plain || unsafe { ffi::OpenSSL_version_num() } < LAZY_MIN_VERSION {
        // Trust settings or CRLs in the bundle: let OpenSSL read it all.
        return b.set_default_verify_paths().map(|()| SystemStore::Loaded);
    }
    let bundle = Arc::new(Bundle {
        pem: pem.unwrap_or_default(),
        index: OnceLock::new(),
    });
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(bundle);
    let store = b.cert_store_mut().as_ptr();
    // SAFETY: `store` is the builder's live X509_STORE; the lookup method
    // is static and never freed; a NULL dir with FILETYPE_DEFAULT means
    // SSL_CERT_DIR or the default directory.
    unsafe {
        let method = lookup_method().ok_or_else(openssl::error::ErrorStack::get)?;
        if ffi::X509_STORE_add_lookup(store, method).is_null() {
            return Err(openssl::error::ErrorStack::get());
        }
        let dir = ffi::X509_STORE_add_lookup(store, ffi::X509_LOOKUP_hash_dir() as *mut _);
        if dir.is_null() {
            return Err(openssl::error::ErrorStack::get());
        }
        ffi::X509_LOOKUP_add_dir(dir, std::ptr::null(), ffi::X509_FILETYPE_DEFAULT);
    }
    // A missing default directory is not an error, as with OpenSSL's paths.
    let _ = openssl::error::ErrorStack::get();
    Ok(SystemStore::OnDemand)
}

/// `SSL_CERT_FILE`, else OpenSSL's default bundle (OPENSSLDIR/cert.pem).
fn bundle_path() -> Option<PathBuf> {
    // SAFETY: both return static NUL-terminated strings.
    let (env, default) = unsafe {
        (
            CStr::from_ptr(ffi::X509_get_default_cert_file_env()),
            CStr::from_ptr(ffi::X509_get_default_cert_file()),
        )
    };
    // As OpenSSL does: no environment overrides in a setuid program.
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    if let Some(v) = env
        .to_str()
        .ok()
        .filter(|_| !secure)
        .and_then(std::env::var_os)
    {
        return Some(PathBuf::from(v));
    }
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(
        default.to_bytes(),
    )))
}

/// Whether every PEM block is a plain certificate.
fn only_certificates(pem: &[u8]) -> bool {
    pem.split(|&b| b == b'\n')
        .filter_map(|line| line.trim_ascii().strip_prefix(b"-----BEGIN "))
        .all(|rest| rest == b"CERTIFICATE-----" || rest == b"X509 CERTIFICATE-----")
}

/// The X509_LOOKUP_METHOD, made once and kept for the life of the process.
fn lookup_method() -> Option<*mut ffi::X509_LOOKUP_METHOD> {
    static METHOD: OnceLock<usize> = OnceLock::new();
    let p = *METHOD.get_or_init(|| {
        // SAFETY: plain constructor and setter on a method we own.
        unsafe {
            let m = X509_LOOKUP_meth_new(c"mailext system bundle".as_ptr());
            if !m.is_null() && X509_LOOKUP_meth_set_get_by_subject(m, by_subject) != 1 {
                return 0;
            }
            m as usize
        }
    });
    (p != 0).then_some(p as *mut ffi::X509_LOOKUP_METHOD)
}

/// OpenSSL asks for certificates named `name` that its store lacks.
unsafe extern "C" fn by_subject(
    lookup: *mut ffi::X509_LOOKUP,
    kind: c_int,
    name: *const ffi::X509_NAME,
    ret: *mut ffi::X509_OBJECT,
) -> c_int {
    if kind != LOOKUP_CERT || lookup.is_null() || name.is_null() || ret.is_null() {
        return 0;
    }
    // Our parse errors must not stay on the queue: the handshake reads it.
    ERR_set_mark();
    let found = std::panic::catch_unwind(|| {
        // SAFETY: OpenSSL passes a live lookup, name and result object.
        unsafe { supply(lookup, name, ret) }
    })
    .unwrap_or(0);
    ERR_pop_to_mark();
    found
}

/// Parses the bundle's certificates named `name`, adds them to the store,
/// and returns the store's first one through `ret`.
///
/// The contract (X509_LOOKUP_meth_new(3)): found objects go into the store,
/// and `ret` holds the store's object without a reference of its own,
/// because the caller takes one. The pointer is the store's, not the one
/// parsed here: another thread may have added the same certificate first.
unsafe fn supply(
    lookup: *mut ffi::X509_LOOKUP,
    name: *const ffi::X509_NAME,
    ret: *mut ffi::X509_OBJECT,
) -> c_int {
    let store = X509_LOOKUP_get_store(lookup);
    if store.is_null() || add_matching(store, name) == 0 {
        return 0;
    }
    if X509_STORE_lock(store) != 1 {
        return 0;
    }
    let obj =
        X509_OBJECT_retrieve_by_subject(ffi::X509_STORE_get0_objects(store), LOOKUP_CERT, name);
    let cert = if obj.is_null() {
        std::ptr::null_mut()
    } else {
        ffi::X509_OBJECT_get0_X509(obj)
    };
    let found = !cert.is_null() && X509_OBJECT_set1_X509(ret, cert) == 1;
    if found {
        // set1 took a reference; the store's own keeps the certificate alive.
        ffi::X509_free(cert);
    }
    X509_STORE_unlock(store);
    found as c_int
}

/// Adds the bundle's certificates with subject `name` to `store`; returns
/// how many matched.
unsafe fn add_matching(store: *mut ffi::X509_STORE, name: *const ffi::X509_NAME) -> usize {
    let bundle = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(bundle) = bundle else {
        return 0;
    };
    let wanted = X509NameRef::from_ptr(name as *mut ffi::X509_NAME);
    let mut n = 0;
    for e in bundle.entries() {
        if !matches!(e.subject.try_cmp(wanted), Ok(Ordering::Equal)) {
            continue;
        }
        if let Some(cert) = parse_cert(&e.der) {
            // The store takes its own reference; a duplicate is no error.
            ffi::X509_STORE_add_cert(store, cert.as_ptr());
            n += 1;
        }
    }
    n
}

/// Adds the bundle CAs that share a subject with a certificate already in
/// the store (from the cacerts folder), which would hide them otherwise.
pub fn preload(b: &mut SslContextBuilder, store: SystemStore, subjects: &[X509Name]) {
    if store != SystemStore::OnDemand || subjects.is_empty() {
        return;
    }
    let store = b.cert_store_mut().as_ptr();
    // SAFETY: the builder's live store and names we own; parse errors are
    // popped, as in the lookup.
    unsafe {
        ERR_set_mark();
        for s in subjects {
            add_matching(store, s.as_ptr());
        }
        ERR_pop_to_mark();
    }
}

/// d2i without openssl's `from_der`, which would empty the whole error
/// queue on failure, not just what this call added.
fn parse_cert(der: &[u8]) -> Option<X509> {
    let mut p = der.as_ptr();
    let len = std::os::raw::c_long::try_from(der.len()).ok()?;
    // SAFETY: d2i reads at most `len` bytes from `p`; a non-NULL result is ours.
    let x = unsafe { ffi::d2i_X509(std::ptr::null_mut(), &mut p, len) };
    (!x.is_null()).then(|| unsafe { X509::from_ptr(x) })
}

fn parse_name(der: &[u8]) -> Option<X509Name> {
    let mut p = der.as_ptr();
    let len = std::os::raw::c_long::try_from(der.len()).ok()?;
    // SAFETY: as in parse_cert.
    let n = unsafe { ffi::d2i_X509_NAME(std::ptr::null_mut(), &mut p, len) };
    (!n.is_null()).then(|| unsafe { X509Name::from_ptr(n) })
}

/// Every `CERTIFICATE` block of `pem` with its subject name.
fn index(pem: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    for line in pem.split(|&b| b == b'\n').map(|l| l.trim_ascii()) {
        if line.starts_with(b"-----BEGIN ") {
            body = Some(Vec::new());
        } else if line.starts_with(b"-----END ") {
            let der = body.take().and_then(|b| decode_base64(&b));
            if let Some(e) = der.and_then(entry) {
                out.push(e);
            }
        } else if let Some(b) = body.as_mut() {
            b.extend_from_slice(line);
        }
    }
    out
}

fn entry(der: Vec<u8>) -> Option<Entry> {
    let subject = parse_name(subject_der(&der)?)?;
    Some(Entry { subject, der })
}

/// One DER element and what follows it.
struct Element<'a> {
    tag: u8,
    whole: &'a [u8],
    contents: &'a [u8],
    rest: &'a [u8],
}

fn element(buf: &[u8]) -> Option<Element<'_>> {
    let (&tag, after_tag) = buf.split_first()?;
    let (&first, after_len) = after_tag.split_first()?;
    let (len, body) = match first {
        0..=0x7f => (first as usize, after_len),
        0x81..=0x84 => {
            let n = (first & 0x7f) as usize;
            let bytes = after_len.get(..n)?;
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &after_len[n..])
        }
        _ => return None, // indefinite or absurd lengths are not DER
    };
    let header = buf.len() - body.len();
    Some(Element {
        tag,
        contents: body.get(..len)?,
        whole: &buf[..header + len],
        rest: &body[len..],
    })
}

/// The subject Name of a certificate (RFC 5280 4.1), found without
/// parsing the rest: version, serial, signature, issuer, validity, subject.
fn subject_der(cert: &[u8]) -> Option<&[u8]> {
    let cert = element(cert).filter(|e| e.tag == 0x30)?;
    let tbs = element(cert.contents).filter(|e| e.tag == 0x30)?;
    let mut fields = tbs.contents;
    if fields.first() == Some(&0xa0) {
        fields = element(fields)?.rest; // explicit version
    }
    for expected in [0x02, 0x30, 0x30, 0x30] {
        fields = element(fields).filter(|e| e.tag == expected)?.rest;
    }
    element(fields).filter(|e| e.tag == 0x30).map(|e| e.whole)
}

fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(text).ok()?;
    openssl::base64::decode_block(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;

    fn cert(cn: &str, serial: u32, version: i32) -> X509 {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        name.append_entry_by_text("O", "Mailext Test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(version).unwrap();
        let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    #[test]
    fn subject_is_found_in_v1_and_v3_certificates() {
        for version in [0, 2] {
            let c = cert("Root One", 7, version);
            let der = c.to_der().unwrap();
            let found = subject_der(&der).expect("subject");
            assert_eq!(found, c.subject_name().to_der().unwrap().as_slice());
        }
    }

    #[test]
    fn index_reads_every_certificate_block() {
        let a = cert("Root A", 1, 2);
        let b = cert("Root B", 2, 2);
        let mut pem = b"# comment\r\n".to_vec();
        pem.extend(a.to_pem().unwrap());
        pem.extend(b"\r\n");
        pem.extend(
            String::from_utf8(b.to_pem().unwrap())
                .unwrap()
                .replace('\n', "\r\n")
                .as_bytes(),
        );
        let entries = index(&pem);
        assert_eq!(entries.len(), 2);
        assert!(matches!(
            entries[1].subject.try_cmp(b.subject_name()),
            Ok(Ordering::Equal)
        ));
        assert_eq!(entries[0].der, a.to_der().unwrap());
    }

    #[test]
    fn damaged_blocks_are_skipped() {
        let a = cert("Root A", 1, 2);
        let pem = String::from_utf8(a.to_pem().unwrap()).unwrap();
        let cut = format!("{}\n-----END CERTIFICATE-----\n", &pem[..200]);
        let junk = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let all = format!("{cut}{junk}{pem}");
        assert_eq!(index(all.as_bytes()).len(), 1);
        assert!(subject_der(&[0x30, 0x80, 0, 0]).is_none());
        assert!(subject_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(subject_der(&[]).is_none());
    }

    #[test]
    fn the_system_bundle_indexes_like_a_full_parse() {
        // Real CAs: v1 and v3, long lengths, odd names. Skipped without one.
        let Some(pem) = bundle_path().and_then(|p| std::fs::read(p).ok()) else {
            return;
        };
        let full = X509::stack_from_pem(&pem).unwrap();
        let entries = index(&pem);
        assert_eq!(entries.len(), full.len());
        for (e, c) in entries.iter().zip(&full) {
            assert_eq!(e.der, c.to_der().unwrap());
            assert!(matches!(
                e.subject.try_cmp(c.subject_name()),
                Ok(Ordering::Equal)
            ));
        }
    }

    #[test]
    fn other_block_kinds_use_openssl_loading() {
        assert!(only_certificates(b"-----BEGIN CERTIFICATE-----\nAA\n"));
        assert!(!only_certificates(b"-----BEGIN TRUSTED CERTIFICATE-----\n"));
        assert!(!only_certificates(b"-----BEGIN X509 CRL-----\n"));
    }
}
