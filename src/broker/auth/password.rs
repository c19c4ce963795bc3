//! Password hashes in RabbitMQ's own format, so that users exported from RabbitMQ import
//! with working passwords: base64 of a 4-byte random salt followed by
//! `hash(salt ++ password)`. SHA-256 is the default, as in RabbitMQ; SHA-512 and MD5 are
//! accepted on import (`hashing_algorithm` in a definitions file).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

/// The hashing algorithms RabbitMQ's internal backend knows, by their module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashingAlgorithm {
    #[default]
    Sha256,
    Sha512,
    Md5,
}

impl HashingAlgorithm {
    /// Parses RabbitMQ's module name (`rabbit_password_hashing_sha256`, ...).
    pub fn parse(name: &str) -> Option<HashingAlgorithm> {
        match name {
            "rabbit_password_hashing_sha256" => Some(HashingAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" => Some(HashingAlgorithm::Sha512),
            "rabbit_password_hashing_md5" => Some(HashingAlgorithm::Md5),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashingAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(salt: &[u8], password: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(password);
            d.finalize().to_vec()
        }
        match self {
            HashingAlgorithm::Sha256 => run::<Sha256>(salt, password),
            HashingAlgorithm::Sha512 => run::<Sha512>(salt, password),
            HashingAlgorithm::Md5 => run::<Md5>(salt, password),
        }
    }

    fn digest_len(self) -> usize {
        match self {
            HashingAlgorithm::Sha256 => 32,
            HashingAlgorithm::Sha512 => 64,
            HashingAlgorithm::Md5 => 16,
        }
    }
}

/// A stored password: salt and digest, decoded. Never logged (no `Debug` of the octets).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub algorithm: HashingAlgorithm,
    /// 4 salt octets followed by the digest.
    octets: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash({})", self.algorithm.name())
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(algorithm: HashingAlgorithm, password: &str) -> PasswordHash {
        let mut salt = [0u8; 4];
        getrandom::fill(&mut salt).expect("the OS random source works");
        let mut octets = salt.to_vec();
        octets.extend(algorithm.digest(&salt, password.as_bytes()));
        PasswordHash { algorithm, octets }
    }

    /// Decodes a hash as RabbitMQ exports it (`password_hash`, base64).
    pub fn from_base64(algorithm: HashingAlgorithm, b64: &str) -> Result<PasswordHash, String> {
        let octets = STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("password_hash is not valid base64: {e}"))?;
        if octets.len() != 4 + algorithm.digest_len() {
            return Err(format!(
                "password_hash has {} octets; {} hashes have {} (4 salt + {} digest)",
                octets.len(),
                algorithm.name(),
                4 + algorithm.digest_len(),
                algorithm.digest_len()
            ));
        }
        Ok(PasswordHash { algorithm, octets })
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.octets)
    }

    /// Compares in constant time for equal lengths.
    pub fn verify(&self, password: &str) -> bool {
        let (salt, digest) = self.octets.split_at(4);
        let got = self.algorithm.digest(salt, password.as_bytes());
        got.len() == digest.len() && got.iter().zip(digest).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_a_hash_made_by_rabbitmq() {
        // `rabbitmqctl hash_password guest` style: salt + sha256(salt ++ "guest").
        let salt = [0x90, 0x8d, 0xc6, 0x0a];
        let mut octets = salt.to_vec();
        octets.extend(Sha256::digest([&salt[..], b"guest"].concat()));
        let b64 = STANDARD.encode(&octets);
        let h = PasswordHash::from_base64(HashingAlgorithm::Sha256, &b64).unwrap();
        assert!(h.verify("guest"));
        assert!(!h.verify("guesT"));
        assert_eq!(h.to_base64(), b64);
    }

    #[test]
    fn each_algorithm_round_trips_and_salts() {
        for a in [
            HashingAlgorithm::Sha256,
            HashingAlgorithm::Sha512,
            HashingAlgorithm::Md5,
        ] {
            let h = PasswordHash::new(a, "s3cret");
            assert!(h.verify("s3cret"));
            assert!(!h.verify("s3cret "));
            let again = PasswordHash::from_base64(a, &h.to_base64()).unwrap();
            assert!(again.verify("s3cret"));
            assert_ne!(PasswordHash::new(a, "s3cret"), h, "a fresh salt each time");
            assert_eq!(HashingAlgorithm::parse(a.name()), Some(a));
        }
    }

    #[test]
    fn refuses_malformed_hashes() {
        assert!(PasswordHash::from_base64(HashingAlgorithm::Sha256, "not base64!").is_err());
        let short = STANDARD.encode([1u8; 20]);
        let e = PasswordHash::from_base64(HashingAlgorithm::Sha256, &short).unwrap_err();
        assert!(e.contains("20 octets"), "{e}");
        assert_eq!(
            HashingAlgorithm::parse("rabbit_password_hashing_sha1"),
            None
        );
    }
}
