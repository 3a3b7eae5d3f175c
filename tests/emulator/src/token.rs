//! Opaque, tamper-evident next tokens bound to an operation, a parent and a filter.

use crate::world::mix_all;

/// Where a listing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub operation: u64,
    pub parent: u32,
    pub filter: u64,
    pub position: u32,
    pub epoch: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this service handed out, or one of another listing.
    Invalid,
    /// Handed out before the tokens expired.
    Expired,
}

fn checksum(secret: u64, payload: &str) -> u64 {
    let bytes: Vec<u64> = payload.bytes().map(u64::from).collect();
    mix_all(&[secret, mix_all(&bytes)])
}

pub fn encode(cursor: Cursor, secret: u64) -> String {
    let payload = format!(
        "{:x}.{:x}.{:x}.{:x}.{:x}",
        cursor.operation, cursor.parent, cursor.filter, cursor.position, cursor.epoch
    );
    let hex: String = payload.bytes().map(|b| format!("{:02x}", b ^ 0x5a)).collect();
    format!("{hex}{:016x}", checksum(secret, &payload))
}

/// Decodes a token handed out for this operation, parent and filter in the current epoch.
pub fn decode(token: &str, secret: u64, expected: Cursor) -> Result<u32, TokenError> {
    if token.len() < 18 || !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(TokenError::Invalid);
    }
    let (hex, sum) = token.split_at(token.len() - 16);
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok().map(|b| b ^ 0x5a)).collect();
    let payload = bytes.and_then(|b| String::from_utf8(b).ok()).ok_or(TokenError::Invalid)?;
    if u64::from_str_radix(sum, 16).ok() != Some(checksum(secret, &payload)) {
        return Err(TokenError::Invalid);
    }
    let fields: Vec<u64> = payload
        .split('.')
        .map(|f| u64::from_str_radix(f, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| TokenError::Invalid)?;
    let [operation, parent, filter, position, epoch] = fields[..] else {
        return Err(TokenError::Invalid);
    };
    if operation != expected.operation || parent != u64::from(expected.parent) || filter != expected.filter {
        return Err(TokenError::Invalid);
    }
    if epoch != expected.epoch {
        return Err(TokenError::Expired);
    }
    u32::try_from(position).map_err(|_| TokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Cursor = Cursor { operation: 3, parent: 7, filter: 11, position: 250, epoch: 0 };

    #[test]
    fn round_trips_and_refuses_tampering_other_listings_and_old_epochs() {
        let token = encode(AT, 42);
        assert_eq!(decode(&token, 42, AT), Ok(250));
        let mut tampered = token.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(decode(std::str::from_utf8(&tampered).unwrap(), 42, AT), Err(TokenError::Invalid));
        assert_eq!(decode(&token, 42, Cursor { parent: 8, ..AT }), Err(TokenError::Invalid));
        assert_eq!(decode(&token, 42, Cursor { epoch: 1, ..AT }), Err(TokenError::Expired));
        assert_eq!(decode("garbage", 42, AT), Err(TokenError::Invalid));
    }
}
