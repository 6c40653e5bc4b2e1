//! Timestamps as the issuer API writes them (`2023-11-03T02:37:35.498Z`, UTC, milliseconds);
//! reading and writing RFC 3339 is `lanyard_protocol::credentials::time`'s.

pub(crate) use lanyard_protocol::credentials::time::{
    format_rfc3339 as rfc3339_secs, parse_rfc3339 as parse_timestamp,
};

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn iso_millis(ms: u64) -> String {
    let seconds = rfc3339_secs(ms / 1000);
    format!("{}.{:03}Z", seconds.trim_end_matches('Z'), ms % 1000)
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_milliseconds() {
        assert_eq!(iso_millis(1_698_982_655_498), "2023-11-03T03:37:35.498Z");
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
