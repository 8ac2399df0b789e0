//! SASL computations. Kept apart from the state machines so they can be
//! checked against the RFCs' published examples.

use openssl::base64;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The base64 CRAM-MD5 response (RFC 2195) to a base64 challenge.
pub fn cram_md5_response(
    username: &str,
    password: &str,
    challenge_b64: &str,
) -> Result<String, String> {
    let challenge = base64::decode_block(challenge_b64.trim())
        .map_err(|_| "challenge is not base64".to_string())?;
    let key = PKey::hmac(password.as_bytes()).map_err(|e| e.to_string())?;
    let mut signer = Signer::new(MessageDigest::md5(), &key).map_err(|e| e.to_string())?;
    signer.update(&challenge).map_err(|e| e.to_string())?;
    let digest = signer.sign_to_vec().map_err(|e| e.to_string())?;
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(base64::encode_block(format!("{username} {hex}").as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc2195_example() {
        // RFC 2195 section 2: user "tim", password "tanstaaftanstaaf".
        let challenge = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+";
        let r = super::cram_md5_response("tim", "tanstaaftanstaaf", challenge).unwrap();
        assert_eq!(r, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    }

    #[test]
    fn bad_challenge_is_an_error() {
        assert!(super::cram_md5_response("a", "b", "!!!").is_err());
    }
}
