//! SASL computations. Kept apart from the state machines so they can be
//! checked against the RFCs' published examples.

use openssl::base64;
use openssl::md::Md;
use openssl::md_ctx::MdCtx;
use std::sync::OnceLock;

/// The base64 CRAM-MD5 response (RFC 2195) to a base64 challenge.
pub fn cram_md5_response(
    username: &str,
    password: &str,
    challenge_b64: &str,
) -> Result<String, String> {
    let challenge = base64::decode_block(challenge_b64.trim())
        .map_err(|_| "challenge is not base64".to_string())?;
    let digest = hmac_md5(password.as_bytes(), &challenge)?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = Vec::with_capacity(username.len() + 1 + 2 * digest.len());
    plain.extend_from_slice(username.as_bytes());
    plain.push(b' ');
    for b in &digest {
        plain.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
    Ok(base64::encode_block(&plain))
}

/// HMAC-MD5 (RFC 2104) written out, because OpenSSL 3's HMAC key refuses
/// the empty password that CRAM-MD5 must still be able to use.
fn hmac_md5(key: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    // Fetched once: OpenSSL 3 otherwise looks MD5 up again for every hash.
    static MD5: OnceLock<Option<Md>> = OnceLock::new();
    let md = MD5
        .get_or_init(|| Md::fetch(None, "MD5", None).ok())
        .as_ref()
        .ok_or("MD5 is not available")?;
    let md5 = |parts: &[&[u8]]| -> Result<Vec<u8>, String> {
        let e = |e: openssl::error::ErrorStack| e.to_string();
        let mut h = MdCtx::new().map_err(e)?;
        h.digest_init(md).map_err(e)?;
        for p in parts {
            h.digest_update(p).map_err(e)?;
        }
        let mut out = vec![0u8; 16];
        h.digest_final(&mut out).map_err(e)?;
        Ok(out)
    };
    let mut block = [0u8; 64];
    if key.len() > 64 {
        let k = md5(&[key])?;
        block[..k.len()].copy_from_slice(&k);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = md5(&[&ipad, message])?;
    md5(&[&opad, &inner])
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
    fn rfc2202_hmac_md5_vectors_and_empty_key() {
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // RFC 2202 test cases 2 and 6 (a key longer than a block).
        let jefe = super::hmac_md5(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(hex(jefe), "750c783e6ab0b503eaa86e310a5db738");
        let long = super::hmac_md5(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(hex(long.unwrap()), "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd");
        assert!(super::cram_md5_response("u", "", "PDEyMz4=").is_ok());
    }

    #[test]
    fn bad_challenge_is_an_error() {
        assert!(super::cram_md5_response("a", "b", "!!!").is_err());
    }
}
