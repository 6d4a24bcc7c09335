//! Option negotiation: which of a client's options (RFC 2347) the server
//! accepts and with which values — `blksize` (RFC 2348), `tsize` and
//! `timeout` (RFC 2349), `windowsize` (RFC 7440). Unknown or malformed
//! options are left out of the acknowledgement, as RFC 2347 allows.

use std::time::Duration;

use crate::packet::{TftpOption, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};

/// Server-side limits and defaults for each transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferConfig {
    /// Largest block size granted; larger requests are lowered to it
    /// (at most 65464, the RFC 2348 maximum).
    pub max_block_size: u16,
    /// Largest window granted, in blocks.
    pub max_window_size: u16,
    /// Largest window granted, in bytes: a transfer keeps its unacknowledged
    /// window in memory for retransmission, so this bounds that memory
    /// (windows are never cut below one block).
    pub max_window_bytes: usize,
    /// Retransmission timeout when the client does not negotiate one.
    pub default_timeout: Duration,
    /// How many times a packet (or window) is resent without progress
    /// before the transfer is abandoned.
    pub max_retries: u32,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            max_block_size: MAX_BLOCK_SIZE,
            max_window_size: 64,
            max_window_bytes: 1024 * 1024,
            default_timeout: Duration::from_secs(1),
            max_retries: 5,
        }
    }
}

/// The parameters one transfer runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedOptions {
    /// Bytes per data block.
    pub block_size: u16,
    /// Blocks sent before waiting for an acknowledgement.
    pub window_size: u16,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// The options to acknowledge in an OACK; empty means no OACK is sent
    /// and data starts at once.
    pub acknowledged: Vec<TftpOption>,
}

/// Chooses the transfer parameters from the client's options.
/// `transfer_size` is the exact number of bytes that will be sent, when
/// known; without it a `tsize` request is not acknowledged.
pub fn negotiate(
    requested: &[TftpOption],
    transfer_size: Option<u64>,
    config: &TransferConfig,
) -> NegotiatedOptions {
    let mut negotiated = NegotiatedOptions {
        block_size: DEFAULT_BLOCK_SIZE,
        window_size: 1,
        timeout: config.default_timeout,
        acknowledged: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for option in requested {
        let name = option.name.to_ascii_lowercase();
        // RFC 2347 does not define repeated options; the first one counts.
        if seen.contains(&name.as_str()) && is_known(&name) {
            continue;
        }
        let accepted = match name.as_str() {
            "blksize" => parse_number(&option.value)
                .filter(|&requested| requested >= u64::from(MIN_BLOCK_SIZE))
                .map(|requested| {
                    let limit = config.max_block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
                    negotiated.block_size = clamp_to_u16(requested, limit);
                    negotiated.block_size.to_string()
                }),
            "windowsize" => {
                parse_number(&option.value).filter(|&requested| requested >= 1).map(|requested| {
                    negotiated.window_size = clamp_to_u16(requested, config.max_window_size.max(1));
                    negotiated.window_size.to_string()
                })
            }
            "timeout" => parse_number(&option.value)
                .filter(|seconds| (1..=255).contains(seconds))
                .map(|seconds| {
                    negotiated.timeout = Duration::from_secs(seconds);
                    seconds.to_string()
                }),
            "tsize" => parse_number(&option.value).and(transfer_size).map(|size| size.to_string()),
            _ => None,
        };
        if let Some(value) = accepted {
            negotiated.acknowledged.push(TftpOption::new(canonical_name(&name), value));
        }
        if is_known(&name) {
            seen.push(canonical_name(&name));
        }
    }
    // Applied last: `windowsize` may come before `blksize` in the request.
    let window_limit = config.max_window_bytes / usize::from(negotiated.block_size);
    let window_limit = u16::try_from(window_limit.max(1)).unwrap_or(u16::MAX);
    if negotiated.window_size > window_limit {
        negotiated.window_size = window_limit;
        for option in &mut negotiated.acknowledged {
            if option.name == "windowsize" {
                option.value = window_limit.to_string();
            }
        }
    }
    negotiated
}

fn is_known(name: &str) -> bool {
    matches!(name, "blksize" | "windowsize" | "timeout" | "tsize")
}

fn canonical_name(name: &str) -> &'static str {
    match name {
        "blksize" => "blksize",
        "windowsize" => "windowsize",
        "timeout" => "timeout",
        _ => "tsize",
    }
}

fn clamp_to_u16(requested: u64, limit: u16) -> u16 {
    u16::try_from(requested.min(u64::from(limit))).unwrap_or(limit)
}

/// A decimal number of plain ASCII digits (no sign, no spaces).
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Absurdly long values saturate rather than being refused.
    Some(text.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Vec<TftpOption> {
        pairs.iter().map(|(name, value)| TftpOption::new(*name, *value)).collect()
    }

    #[test]
    fn no_options_means_rfc_1350_defaults_and_no_oack() {
        let negotiated = negotiate(&[], Some(10), &TransferConfig::default());
        assert_eq!(negotiated.block_size, 512);
        assert_eq!(negotiated.window_size, 1);
        assert_eq!(negotiated.timeout, Duration::from_secs(1));
        assert!(negotiated.acknowledged.is_empty());
    }

    #[test]
    fn accepts_known_options_in_request_order_and_ignores_unknown_ones() {
        let negotiated = negotiate(
            &options(&[
                ("TSIZE", "0"),
                ("multicast", ""),
                ("BlkSize", "1468"),
                ("windowsize", "16"),
                ("timeout", "3"),
            ]),
            Some(123_456),
            &TransferConfig::default(),
        );
        assert_eq!(negotiated.block_size, 1468);
        assert_eq!(negotiated.window_size, 16);
        assert_eq!(negotiated.timeout, Duration::from_secs(3));
        assert_eq!(
            negotiated.acknowledged,
            options(&[
                ("tsize", "123456"),
                ("blksize", "1468"),
                ("windowsize", "16"),
                ("timeout", "3"),
            ])
        );
    }

    #[test]
    fn clamps_block_and_window_sizes_to_the_configured_limits() {
        let config = TransferConfig {
            max_block_size: 1024,
            max_window_size: 8,
            ..TransferConfig::default()
        };
        let negotiated = negotiate(
            &options(&[("blksize", "99999999999999999999999"), ("windowsize", "65535")]),
            None,
            &config,
        );
        assert_eq!(negotiated.block_size, 1024);
        assert_eq!(negotiated.window_size, 8);
        assert_eq!(negotiated.acknowledged, options(&[("blksize", "1024"), ("windowsize", "8")]));
    }

    #[test]
    fn the_window_is_bounded_in_bytes_whatever_the_option_order() {
        let config = TransferConfig { max_window_bytes: 100_000, ..TransferConfig::default() };
        let negotiated =
            negotiate(&options(&[("windowsize", "64"), ("blksize", "65464")]), None, &config);
        assert_eq!(negotiated.window_size, 1);
        assert_eq!(negotiated.acknowledged, options(&[("windowsize", "1"), ("blksize", "65464")]));
        let negotiated =
            negotiate(&options(&[("blksize", "1468"), ("windowsize", "64")]), None, &config);
        assert_eq!(negotiated.window_size, 64);
        let negotiated =
            negotiate(&options(&[("blksize", "10000"), ("windowsize", "64")]), None, &config);
        assert_eq!(negotiated.window_size, 10);
    }

    #[test]
    fn block_size_never_exceeds_the_rfc_maximum() {
        let config = TransferConfig { max_block_size: u16::MAX, ..TransferConfig::default() };
        let negotiated = negotiate(&options(&[("blksize", "65535")]), None, &config);
        assert_eq!(negotiated.block_size, MAX_BLOCK_SIZE);
    }

    #[test]
    fn ignores_out_of_range_and_malformed_values() {
        let negotiated = negotiate(
            &options(&[
                ("blksize", "7"),
                ("windowsize", "0"),
                ("timeout", "0"),
                ("timeout", "256"),
                ("tsize", "-1"),
                ("blksize", " 512"),
            ]),
            Some(5),
            &TransferConfig::default(),
        );
        assert_eq!(negotiated.block_size, 512);
        assert_eq!(negotiated.window_size, 1);
        assert!(negotiated.acknowledged.is_empty());
    }

    #[test]
    fn tsize_is_left_out_when_the_size_is_unknown() {
        let negotiated = negotiate(
            &options(&[("tsize", "0"), ("blksize", "1400")]),
            None,
            &TransferConfig::default(),
        );
        assert_eq!(negotiated.acknowledged, options(&[("blksize", "1400")]));
    }

    #[test]
    fn the_first_of_repeated_options_wins() {
        let negotiated = negotiate(
            &options(&[("blksize", "1000"), ("BLKSIZE", "2000")]),
            None,
            &TransferConfig::default(),
        );
        assert_eq!(negotiated.block_size, 1000);
        assert_eq!(negotiated.acknowledged, options(&[("blksize", "1000")]));
    }
}
