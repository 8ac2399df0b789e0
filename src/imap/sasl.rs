//! SASL client messages for IMAP AUTHENTICATE (RFC 3501, SASL-IR RFC 4959):
//! PLAIN, XOAUTH2, OAUTHBEARER and SCRAM-SHA-256. Pure computation, no I/O,
//! so every mechanism is checked against its RFC's published bytes.

use std::fmt;

use openssl::base64;
use openssl::error::ErrorStack;
use openssl::hash::{hash, MessageDigest};
use openssl::pkcs5::pbkdf2_hmac;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::error::MailError;

/// Base64 PLAIN initial response (RFC 4616): `authzid NUL user NUL pass`.
/// The caller has already refused credentials containing NUL, CR or LF.
pub fn plain_initial(authzid: &str, username: &str, password: &str) -> String {
    base64::encode_block(format!("{authzid}\0{username}\0{password}").as_bytes())
}

/// Base64 XOAUTH2 initial response (Google's format).
pub fn xoauth2_initial(username: &str, token: &str) -> String {
    base64::encode_block(format!("user={username}\x01auth=Bearer {token}\x01\x01").as_bytes())
}

/// Base64 OAUTHBEARER initial response (RFC 7628 section 3.1).
pub fn oauthbearer_initial(username: &str, host: &str, port: u16, token: &str) -> String {
    let user = saslname(username);
    let msg = format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01");
    base64::encode_block(msg.as_bytes())
}

/// What the client sends when an XOAUTH2 exchange answers with a `+` error
/// continuation: an empty line. The server then sends its tagged NO.
pub const XOAUTH2_ERROR_REPLY: &str = "";

/// What the client sends to an OAUTHBEARER error continuation: base64 of a
/// single `\x01` (RFC 7628 section 3.2.3), after which the server sends NO.
pub const OAUTHBEARER_ERROR_REPLY: &str = "AQ==";

/// A short readable text from the base64 JSON of an OAuth error continuation,
/// such as `{"status":"401","schemes":"bearer","scope":"..."}`. Tolerant:
/// garbage gives a generic text, never a panic.
pub fn oauth_error_text(challenge_b64: &str) -> String {
    let json = base64::decode_block(challenge_b64.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let Some(status) = json_field(&json, "status") else {
        return "the server refused the token (no readable error details)".to_string();
    };
    let hint = match status.as_str() {
        "401" | "invalid_token" => " (token invalid or expired)",
        "403" | "insufficient_scope" => " (token lacks the scope)",
        "400" | "invalid_request" => " (malformed request)",
        _ => "",
    };
    let scope = json_field(&json, "scope").map(|s| format!(", scope {s}"));
    format!(
        "the server refused the token: status {status}{hint}{}",
        scope.unwrap_or_default()
    )
}

/// The value of `"key": "value"` (or a bare token) in flat JSON, scanned
/// without a parser because only two short fields are ever read. The value is
/// cut to 100 printable characters since it goes into an error text.
fn json_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[start..].trim_start().strip_prefix(':')?.trim_start();
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => &rest[..rest.find([',', '}']).unwrap_or(rest.len())],
    };
    let value: String = value
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    (!value.is_empty()).then_some(value)
}

/// RFC 5802 saslname (also used by RFC 7628): ',' and '=' escaped.
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Highest iteration count accepted, so a hostile server cannot make the
/// client spin for minutes (RFC 7677 recommends at least 4096).
const MAX_ITERATIONS: u32 = 1_000_000;

/// Characters that would break the IMAP line (UnsafeCredentials elsewhere too).
const UNSAFE: [char; 3] = ['\0', '\r', '\n'];

/// SCRAM-SHA-256 (RFC 5802, RFC 7677) before the server-first message.
/// `server_first` consumes it, so the steps can only be taken in order.
pub struct ScramClient {
    username: String,
    password: String,
    nonce: String,
}

/// SCRAM-SHA-256 after the proof was sent: only the server's signature
/// remains to check.
pub struct ScramAwaitingFinal {
    server_signature: Vec<u8>,
}

// Written by hand so that no password, key or signature is ever logged.
impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ScramClient");
        d.field("username", &self.username);
        d.field("nonce", &self.nonce);
        d.finish_non_exhaustive()
    }
}

impl fmt::Debug for ScramAwaitingFinal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramAwaitingFinal").finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client with a fresh random nonce: 24 bytes give 32 base64
    /// characters without padding, and base64 never contains ','.
    pub fn new(username: &str, password: &str) -> Result<ScramClient, MailError> {
        let mut bytes = [0u8; 24];
        openssl::rand::rand_bytes(&mut bytes).map_err(internal)?;
        ScramClient::with_nonce(username, password, &base64::encode_block(&bytes))
    }

    /// A client with a given nonce, for tests against published examples.
    pub fn with_nonce(user: &str, password: &str, nonce: &str) -> Result<ScramClient, MailError> {
        if user.contains(UNSAFE) || password.contains(UNSAFE) {
            return Err(MailError::UnsafeCredentials);
        }
        if nonce.is_empty() || !printable(nonce) {
            let text = "SCRAM nonce must be printable ASCII without ','";
            return Err(MailError::BadValue(text.into()));
        }
        let user = stringprep::saslprep(user)
            .map_err(|e| MailError::BadValue(format!("SCRAM user name (SASLprep): {e}")))?;
        if user.is_empty() {
            return Err(MailError::BadValue("SCRAM needs a user name".into()));
        }
        // stringprep's error names the offending character: never show it.
        let password = stringprep::saslprep(password).map_err(|_| {
            let text = "the password has characters that SCRAM (SASLprep) does not allow";
            MailError::BadValue(text.into())
        })?;
        Ok(ScramClient {
            username: saslname(&user),
            password: password.into_owned(),
            nonce: nonce.to_string(),
        })
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.username, self.nonce)
    }

    /// Base64 client-first message. No channel binding: GS2 header `n,,`.
    pub fn client_first(&self) -> String {
        base64::encode_block(format!("n,,{}", self.client_first_bare()).as_bytes())
    }

    /// Checks the server-first message; returns the next state and the
    /// base64 client-final message (with the proof) to send.
    pub fn server_first(self, challenge: &str) -> Result<(ScramAwaitingFinal, String), MailError> {
        let server_first = decode_text(challenge)?;
        if server_first.starts_with("m=") {
            let text = "SCRAM server requires an unsupported extension";
            return Err(MailError::BadResponse(text.into()));
        }
        // Attributes after i= are extensions (RFC 5802 grammar): ignored.
        let mut parts = server_first.split(',');
        let nonce = attribute(parts.next(), "r=")?;
        let salt = attribute(parts.next(), "s=")?;
        let iterations = attribute(parts.next(), "i=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            let text = "SCRAM server nonce does not extend the client's";
            return Err(MailError::BadResponse(text.into()));
        }
        if !printable(nonce) {
            return Err(MailError::Syntax(
                "SCRAM server nonce is unprintable".into(),
            ));
        }
        let salt = base64::decode_block(salt)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MailError::Syntax("SCRAM salt is not base64".into()))?;
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            let text = "SCRAM iteration count is not a number";
            return Err(MailError::Syntax(text.into()));
        }
        let iterations = iterations.parse::<u32>().unwrap_or(u32::MAX);
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            let text = format!("SCRAM iteration count {iterations} not in 1..={MAX_ITERATIONS}");
            return Err(MailError::BadResponse(text));
        }

        let sha256 = MessageDigest::sha256();
        let mut salted = [0u8; 32];
        let password = self.password.as_bytes();
        pbkdf2_hmac(password, &salt, iterations as usize, sha256, &mut salted).map_err(internal)?;
        let client_key = hmac_sha256(&salted, b"Client Key")?;
        let stored_key = hash(sha256, &client_key).map_err(internal)?;
        let without_proof = format!("c=biws,r={nonce}");
        let bare = self.client_first_bare();
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let client_signature = hmac_sha256(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac_sha256(&salted, b"Server Key")?;
        let server_signature = hmac_sha256(&server_key, auth_message.as_bytes())?;

        let client_final = format!("{without_proof},p={}", base64::encode_block(&proof));
        let next = ScramAwaitingFinal { server_signature };
        Ok((next, base64::encode_block(client_final.as_bytes())))
    }
}

impl ScramAwaitingFinal {
    /// Checks the server-final message: the server must prove that it knows
    /// the password too, or the session may be with an impostor.
    pub fn server_final(self, challenge: &str) -> Result<(), MailError> {
        let text = decode_text(challenge)?;
        let first = text.split(',').next().unwrap_or("");
        if let Some(error) = first.strip_prefix("e=") {
            let text = format!("SCRAM server error: {error}");
            return Err(MailError::AuthFailed(text));
        }
        let signature = first
            .strip_prefix("v=")
            .and_then(|v| base64::decode_block(v).ok())
            .ok_or_else(|| MailError::Syntax("SCRAM server-final lacks v=".into()))?;
        // memcmp::eq panics on unequal lengths, so those are compared first.
        let expected = &self.server_signature;
        if signature.len() == expected.len() && openssl::memcmp::eq(&signature, expected) {
            Ok(())
        } else {
            let text = "SCRAM server signature is wrong";
            Err(MailError::ServerProof(text.into()))
        }
    }
}

/// The value of one `name=value` attribute of a SCRAM message.
fn attribute<'a>(part: Option<&'a str>, name: &str) -> Result<&'a str, MailError> {
    part.and_then(|p| p.strip_prefix(name))
        .ok_or_else(|| MailError::Syntax(format!("SCRAM server-first lacks {name}")))
}

/// RFC 5802 `printable`: ASCII 0x21..0x7E except ','.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A base64 challenge that must decode to UTF-8 text.
fn decode_text(challenge_b64: &str) -> Result<String, MailError> {
    let bytes = base64::decode_block(challenge_b64.trim())
        .map_err(|_| MailError::Syntax("SASL challenge is not base64".into()))?;
    String::from_utf8(bytes).map_err(|_| MailError::Syntax("SASL challenge is not UTF-8".into()))
}

/// HMAC-SHA-256 through OpenSSL: SCRAM's HMAC keys are always 32-byte
/// digests, never the empty key OpenSSL 3 refuses (the password only goes
/// to PBKDF2, which accepts an empty one).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<Vec<u8>, MailError> {
    let key = PKey::hmac(key).map_err(internal)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(internal)?;
    signer.update(message).map_err(internal)?;
    signer.sign_to_vec().map_err(internal)
}

fn internal(e: ErrorStack) -> MailError {
    MailError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // MailError codes, so that tables of failures stay one line each.
    const SYNTAX: i32 = -525;
    const BAD: i32 = -523;
    const AUTH: i32 = -1120;
    const PROOF: i32 = -1138;
    const VALUE: i32 = -1132;

    fn b64(s: &str) -> String {
        base64::encode_block(s.as_bytes())
    }

    fn unb64(s: &str) -> Vec<u8> {
        base64::decode_block(s).unwrap()
    }

    // RFC 7677 section 3: user "user", password "pencil".
    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SALT: &str = "s=W22ZaJ0SNY7soEsUEjb6gQ==";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn client() -> ScramClient {
        ScramClient::with_nonce("user", "pencil", NONCE).unwrap()
    }

    fn finish(server_final: &str) -> Result<(), MailError> {
        let (awaiting, _) = client().server_first(&b64(SERVER_FIRST))?;
        awaiting.server_final(server_final)
    }

    #[test]
    fn rfc7677_scram_sha256_example() {
        let first = unb64(&client().client_first());
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (awaiting, client_final) = client().server_first(&b64(SERVER_FIRST)).unwrap();
        let expected = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(unb64(&client_final), expected.as_bytes());
        awaiting.server_final(&b64(SERVER_FINAL)).unwrap();
        // Extensions after i= and after v= are allowed by the grammar and ignored.
        finish(&b64(&format!("{SERVER_FINAL},x=1"))).unwrap();
        let extended = b64(&format!("{SERVER_FIRST},x=future"));
        assert!(client().server_first(&extended).is_ok());
    }

    #[test]
    fn wrong_or_malformed_server_final_is_refused() {
        let cases = [
            (b64(&SERVER_FINAL.replace("v=6", "v=7")), PROOF),
            (b64("v=AAAA"), PROOF),
            (b64("e=invalid-proof"), AUTH),
            (b64("x=1"), SYNTAX),
            (b64("v=!!"), SYNTAX),
            ("!!!".into(), SYNTAX),
            (String::new(), SYNTAX),
        ];
        for (case, code) in cases {
            assert_eq!(finish(&case).unwrap_err().code(), code, "{case}");
        }
        let refused = finish(&b64("e=invalid-proof")).unwrap_err();
        assert!(refused.to_string().contains("invalid-proof"));
    }

    #[test]
    fn bad_server_first_messages_are_errors() {
        let cases = [
            (format!("r=someoneelse123,{SALT},i=4096"), BAD),
            (format!("r={NONCE},{SALT},i=4096"), BAD),
            (format!("m=ext,r={NONCE}x,{SALT},i=4096"), BAD),
            (format!("r={NONCE}x,{SALT},i=1000001"), BAD),
            (format!("r={NONCE}x,{SALT},i=99999999999999999999"), BAD),
            (format!("r={NONCE}x,{SALT},i=0"), BAD),
            (format!("r={NONCE}x,{SALT},i=+5"), SYNTAX),
            (format!("r={NONCE}x,{SALT},i="), SYNTAX),
            (format!("r={NONCE}x,{SALT}"), SYNTAX),
            (format!("r={NONCE}x,i=4096"), SYNTAX),
            (format!("{SALT},r={NONCE}x,i=4096"), SYNTAX),
            (format!("r={NONCE}x,s=!!notbase64,i=4096"), SYNTAX),
            (format!("r={NONCE}x,s=,i=4096"), SYNTAX),
            (String::new(), SYNTAX),
        ];
        for (case, code) in &cases {
            let err = client().server_first(&b64(case)).unwrap_err();
            assert_eq!(err.code(), *code, "{case}: {err}");
        }
        for garbage in ["%%%garbage".into(), base64::encode_block(&[0xff, 0xfe])] {
            let err = client().server_first(&garbage).unwrap_err();
            assert_eq!(err.code(), SYNTAX);
        }
    }

    #[test]
    fn credentials_are_prepared_and_checked_without_echoing_the_password() {
        let unsafe_pass = ScramClient::new("u", "p\r\nx").unwrap_err();
        assert_eq!(unsafe_pass, MailError::UnsafeCredentials);
        assert_eq!(ScramClient::new("", "p").unwrap_err().code(), VALUE);
        let comma_nonce = ScramClient::with_nonce("u", "p", "a,b");
        assert_eq!(comma_nonce.unwrap_err().code(), VALUE);
        // U+0007 is prohibited by SASLprep; the message must not quote it.
        let text = ScramClient::new("u", "secret\u{7}").unwrap_err();
        let text = text.to_string();
        assert!(text.contains("password") && !text.contains("secret") && !text.contains('\u{7}'));
        // SASLprep maps U+00A0 to a space; the user name gets saslname escaping.
        let c = ScramClient::with_nonce("a,b=c", "pen\u{a0}cil", "n").unwrap();
        assert_eq!(unb64(&c.client_first()), b"n,,n=a=2Cb=3Dc,r=n");
        assert_eq!(c.password, "pen cil");
    }

    #[test]
    fn random_nonce_and_empty_password() {
        let c = ScramClient::new("user", "").unwrap();
        assert_eq!(c.nonce.len(), 32);
        assert!(printable(&c.nonce) && !c.nonce.contains('='));
        assert_ne!(c.nonce, ScramClient::new("user", "").unwrap().nonce);
        let first = format!("r={}x,s=c2FsdA==,i=1", c.nonce);
        assert!(c.server_first(&b64(&first)).is_ok());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let client = ScramClient::with_nonce("user", "hunter2pencil", NONCE).unwrap();
        let text = format!("{client:?}");
        assert!(text.contains("user") && !text.contains("hunter2"), "{text}");
        let (awaiting, _) = client.server_first(&b64(SERVER_FIRST)).unwrap();
        assert_eq!(format!("{awaiting:?}"), "ScramAwaitingFinal { .. }");
    }

    #[test]
    fn plain_xoauth2_oauthbearer_exact_bytes() {
        assert_eq!(unb64(&plain_initial("", "tim", "pw")), b"\0tim\0pw");
        assert_eq!(unb64(&plain_initial("admin", "u", "p")), b"admin\0u\0p");
        let xoauth2 = unb64(&xoauth2_initial("me@x.com", "ya29.vF9d"));
        assert_eq!(xoauth2, b"user=me@x.com\x01auth=Bearer ya29.vF9d\x01\x01");
        // RFC 7628 section 4.1.
        let token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
        let bearer = oauthbearer_initial("user@example.com", "server.example.com", 143, token);
        let expected = format!(
            "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
             auth=Bearer {token}\x01\x01"
        );
        assert_eq!(unb64(&bearer), expected.as_bytes());
        let escaped = unb64(&oauthbearer_initial("a,b=c", "h", 993, "t"));
        assert!(escaped.starts_with(b"n,a=a=2Cb=3Dc,\x01host=h\x01port=993\x01"));
        assert_eq!(saslname("x=,y"), "x=3D=2Cy");
        assert_eq!(unb64(OAUTHBEARER_ERROR_REPLY), b"\x01");
        assert_eq!(XOAUTH2_ERROR_REPLY, "");
    }

    #[test]
    fn oauth_error_text_is_readable_and_tolerant() {
        let google = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        let expected = "the server refused the token: status 401 (token invalid or expired), \
                        scope https://mail.google.com/";
        assert_eq!(oauth_error_text(&b64(google)), expected);
        let spaced = b64(r#"{ "schemes" : "bearer", "status" : "insufficient_scope" }"#);
        assert!(oauth_error_text(&spaced).ends_with("insufficient_scope (token lacks the scope)"));
        assert!(oauth_error_text(&b64(r#"{"status":400}"#)).contains("status 400 (malformed"));
        let unterminated = b64("{\"status\":\"401");
        let garbage = [
            b64("\"status\""),
            b64("\u{fffd}"),
            unterminated,
            "!!!".into(),
        ];
        for input in garbage.iter().chain(&[String::new(), "AQ==".into()]) {
            let text = oauth_error_text(input);
            assert!(
                text.contains("no readable error details"),
                "{input}: {text}"
            );
        }
        let long = b64(&format!("{{\"status\":\"{}\"}}", "x\n".repeat(500)));
        assert!(oauth_error_text(&long).len() < 200);
    }
}
