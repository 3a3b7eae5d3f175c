//! Who signed a request, and for which region: read from its SigV4 `Authorization` header
//! (`Credential=<access key id>/<date>/<region>/<service>/aws4_request`). The account comes from the
//! access key id itself, as AWS encodes it (and as moto's STS and IAM issue keys): after the
//! four-letter prefix, eight base32 characters hold half the account id plus an offset, and the
//! next character's half of the alphabet its parity. A key that does not decode (the fixed local
//! test key) is the emulator's home account's.

/// The base32 alphabet of key ids.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Where the encoded account half starts (the value of `QAAAAAAA`).
const ACCOUNT_OFFSET: u64 = 549_755_813_888;

/// The access key id and region a request was signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    pub access_key_id: String,
    pub region: String,
}

/// The signer of an `Authorization` header, if it is SigV4 with a credential scope.
pub fn signer(authorization: &str) -> Option<Signer> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest.split(',').find_map(|part| part.trim().strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let access_key_id = parts.next()?.to_owned();
    let (_date, region) = (parts.next()?, parts.next()?.to_owned());
    Some(Signer { access_key_id, region })
}

/// The account an access key id belongs to, for keys that carry it (`AKIA…`, `ASIA…`).
pub fn account_of(access_key_id: &str) -> Option<String> {
    let key = access_key_id.as_bytes();
    if key.len() < 16 || !(access_key_id.starts_with("AKIA") || access_key_id.starts_with("ASIA")) {
        return None;
    }
    let mut half = 0u64;
    for c in &key[4..12] {
        half = (half << 5) | ALPHABET.iter().position(|a| a == c)? as u64;
    }
    let parity = ALPHABET.iter().position(|a| *a == key[12])? as u64 / 16;
    let account = half.checked_sub(ACCOUNT_OFFSET)? * 2 + parity;
    (account < 1_000_000_000_000).then(|| format!("{account:012}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signer_is_read_from_the_credential_scope() {
        let header = "AWS4-HMAC-SHA256 Credential=ASIAQAAAAAAA2EXAMPLE/20261122/eu-west-1/ivs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        let signer = signer(header).unwrap();
        assert_eq!((signer.access_key_id.as_str(), signer.region.as_str()), ("ASIAQAAAAAAA2EXAMPLE", "eu-west-1"));
        assert_eq!(super::signer("Bearer x"), None);
    }

    #[test]
    fn an_access_key_id_names_its_account() {
        // Keys as moto's IAM and STS issue them for these accounts (moto.iam.utils).
        assert_eq!(account_of("ASIAQAAAAAAAPGKYVPF2").as_deref(), Some("000000000000"));
        assert_eq!(account_of("AKIAQAAAAAAAAXAMPLE1").as_deref(), Some("000000000000"));
        assert_eq!(account_of("ASIAQAAAAAAAQXAMPLE1").as_deref(), Some("000000000001"));
        assert_eq!(account_of("ASIARZPUZDIKKDH5O5EZ").as_deref(), Some("123456789012"));
        assert_eq!(account_of("ASIARTX3GSDS4FQTHS2Y").as_deref(), Some("111122223333"));
        assert_eq!(account_of("ASIA6RVFFB774UD2MGRV").as_deref(), Some("999999999999"));
        assert_eq!(account_of("AKIDLOCALSTANDIN"), None);
        assert_eq!(account_of("ASIA!!!!!!!!!!!!!!!!"), None);
    }
}
