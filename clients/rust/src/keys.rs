//! Crust's key-based login: an ed25519 key per client, the server's
//! authorized-keys file, and the challenge both sides sign and check.
//!
//! A secret key file holds one line, `crust-ed25519-secret <64 hex digits>`.
//! An authorized-keys file holds one line per key, `ed25519 <64 hex digits> <user>`;
//! blank lines and `#` comments are ignored.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::protocol::CHALLENGE_PREFIX;

const SECRET_TAG: &str = "crust-ed25519-secret";
const PUBLIC_TAG: &str = "ed25519";

pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source");
    SigningKey::from_bytes(&seed)
}

pub fn secret_line(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", hex(key.as_bytes()))
}

/// The line that authorizes `key` for `user` in a server's authorized-keys file.
pub fn authorized_line(key: &VerifyingKey, user: &str) -> String {
    format!("{PUBLIC_TAG} {} {user}", hex(key.as_bytes()))
}

pub fn read_secret(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    let bad = || format!("{}: not a Crust secret key (expected `{SECRET_TAG} <64 hex digits>`)", path.display());
    let hex_seed = text.trim().strip_prefix(SECRET_TAG).ok_or_else(bad)?.trim();
    let seed: [u8; 32] = unhex(hex_seed).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The keys in an authorized-keys file, with the user each logs in as.
pub fn parse_authorized(text: &str) -> Result<Vec<(String, VerifyingKey)>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why} (expected `{PUBLIC_TAG} <64 hex digits> <user>`)", n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [tag, key, user] = fields[..] else { return Err(bad("three fields")) };
        if tag != PUBLIC_TAG {
            return Err(bad(&format!("unknown key type `{tag}`")));
        }
        let bytes: [u8; 32] = unhex(key).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("a bad key"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an ed25519 public key"))?;
        keys.push((user.to_string(), key));
    }
    Ok(keys)
}

pub fn sign_challenge(key: &SigningKey, nonce: &[u8]) -> Vec<u8> {
    key.sign(&[CHALLENGE_PREFIX, nonce].concat()).to_bytes().to_vec()
}

pub fn verify_challenge(key: &VerifyingKey, nonce: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else { return false };
    key.verify(&[CHALLENGE_PREFIX, nonce].concat(), &signature).is_ok()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_challenge_verifies_only_with_its_key_and_nonce() {
        let key = generate();
        let other = generate();
        let signature = sign_challenge(&key, b"nonce");
        assert!(verify_challenge(&key.verifying_key(), b"nonce", &signature));
        assert!(!verify_challenge(&key.verifying_key(), b"other nonce", &signature));
        assert!(!verify_challenge(&other.verifying_key(), b"nonce", &signature));
        assert!(!verify_challenge(&key.verifying_key(), b"nonce", b"short"));
    }

    #[test]
    fn authorized_keys_round_trip_and_name_bad_lines() {
        let key = generate();
        let text = format!("# team\n\n{}\n", authorized_line(&key.verifying_key(), "alice"));
        assert_eq!(parse_authorized(&text).unwrap(), vec![("alice".to_string(), key.verifying_key())]);
        assert!(parse_authorized("ed25519 zz alice").unwrap_err().starts_with("line 1: a bad key"));
        assert!(parse_authorized("\nrsa 00 bob").unwrap_err().contains("line 2: unknown key type `rsa`"));
    }
}
