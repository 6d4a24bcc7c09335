//! The kernel command line (`/proc/cmdline`) as the agent reads it.
//!
//! Words are split on whitespace; double quotes group words and are removed,
//! as the kernel does (`key="a b"` and `"key=a b"` both give `a b`). Each
//! word is `key=value` or a bare `key`. Parsing never fails: unknown keys are
//! kept in [`KernelArgs::raw`] only, and known keys with bad values are
//! skipped with a note in [`KernelArgs::warnings`].
//!
//! Known keys (the Ironic Python Agent's names are accepted too):
//! - `ferric.api_url=`, `ferric.api=`, `ipa-api-url=`: the API URL (ferric's
//!   names win over Ironic's when several are present).
//! - `BOOTIF=01-52-54-00-12-34-56`: the MAC of the interface that PXE-booted
//!   (iPXE's `01-${netX/mac:hexhyp}` form; a plain MAC is accepted too).
//! - `ferric.node=`: the node UUID, when the boot service knows it.
//! - `ipa-insecure=1` / `ferric.insecure`: do not verify the API's TLS cert.
//! - `ferric.debug` / `ipa-debug=1`: verbose logging.
//! - `ferric.console=ttyS0`: the device milestone lines go to (default
//!   `/dev/console`).
//! - `ipa-inspection-callback-url=`: where inspection data goes.

use std::path::Path;

use ferric_dhcp::MacAddr;

/// What the agent takes from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs {
    /// The ferric (Ironic-compatible) API URL, without a trailing `/`.
    pub api_url: Option<String>,
    /// The MAC of the PXE interface (`BOOTIF=`).
    pub boot_mac: Option<MacAddr>,
    /// The node's UUID (`ferric.node=`).
    pub node: Option<String>,
    /// Skip TLS verification of the API (`ipa-insecure=1`).
    pub insecure: bool,
    /// Verbose logging (`ferric.debug`).
    pub debug: bool,
    /// Console device for milestone lines, e.g. `ttyS0` (`ferric.console=`).
    pub console: Option<String>,
    /// Inspection callback URL (`ipa-inspection-callback-url=`).
    pub inspection_callback_url: Option<String>,
    /// Every word in order: key and value (`None` for a bare key).
    pub raw: Vec<(String, Option<String>)>,
    /// Known keys whose values were not understood.
    pub warnings: Vec<String>,
}

/// Why the command line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct CmdlineError {
    /// The file read.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Splits a command line into words, honouring and removing double quotes.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for ch in text.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Parses a truthy flag value: bare, `1`, `true`, `yes`, `on` are true.
fn flag(value: Option<&str>) -> Option<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "1" | "true" | "yes" | "on") => Some(true),
        Some("0" | "false" | "no" | "off") => Some(false),
        Some(_) => None,
    }
}

/// Parses `BOOTIF`: `01-aa-bb-cc-dd-ee-ff` (hardware type 1 first) or a
/// plain unicast MAC.
pub fn parse_bootif(value: &str) -> Option<MacAddr> {
    let value = value.trim();
    let mac = match value.len() {
        20 if value.starts_with("01-") || value.starts_with("01:") => &value[3..],
        _ => value,
    };
    // A NIC's MAC is never multicast: such a value is a truncated BOOTIF.
    mac.parse().ok().filter(|m: &MacAddr| m.0[0] & 1 == 0)
}

impl KernelArgs {
    /// Parses command-line text. Never panics.
    pub fn parse(text: &str) -> KernelArgs {
        let mut args = KernelArgs::default();
        let mut ipa_api_url = None;
        let mut ferric_api_url = None;
        for word in split_words(text) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (word, None),
            };
            let v = value.as_deref();
            let mut bad = false;
            match key.as_str() {
                "ferric.api_url" | "ferric.api" => match v.filter(|v| !v.is_empty()) {
                    Some(url) => ferric_api_url = Some(url.trim_end_matches('/').to_owned()),
                    None => bad = true,
                },
                "ipa-api-url" => match v.filter(|v| !v.is_empty()) {
                    Some(url) => ipa_api_url = Some(url.trim_end_matches('/').to_owned()),
                    None => bad = true,
                },
                "BOOTIF" => match v.and_then(parse_bootif) {
                    Some(mac) => args.boot_mac = Some(mac),
                    None => bad = true,
                },
                "ferric.node" => match v.filter(|v| !v.is_empty()) {
                    Some(node) => args.node = Some(node.to_owned()),
                    None => bad = true,
                },
                "ipa-insecure" | "ferric.insecure" => match flag(v) {
                    Some(on) => args.insecure = on,
                    None => bad = true,
                },
                "ferric.debug" | "ipa-debug" => match flag(v) {
                    Some(on) => args.debug = on,
                    None => bad = true,
                },
                "ferric.console" => match v.filter(|v| !v.is_empty()) {
                    Some(dev) => {
                        args.console = Some(dev.trim_start_matches("/dev/").to_owned());
                    }
                    None => bad = true,
                },
                "ipa-inspection-callback-url" => match v.filter(|v| !v.is_empty()) {
                    Some(url) => args.inspection_callback_url = Some(url.to_owned()),
                    None => bad = true,
                },
                _ => {}
            }
            if bad {
                args.warnings.push(format!("ignored {key}={}", v.unwrap_or("")));
            }
            args.raw.push((key, value));
        }
        args.api_url = ferric_api_url.or(ipa_api_url);
        args
    }

    /// Reads and parses a command-line file (normally `/proc/cmdline`).
    pub fn read(path: &Path) -> Result<KernelArgs, CmdlineError> {
        let text = std::fs::read(path)
            .map_err(|source| CmdlineError { path: path.display().to_string(), source })?;
        Ok(KernelArgs::parse(&String::from_utf8_lossy(&text)))
    }

    /// The last value given for `key` (a bare key gives `""`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_httpboot_renders() {
        let text = "initrd=ramdisk ipa-api-url=http://198.18.0.1:6385 \
                    ferric.api_url=http://198.18.0.1:6385/ \
                    ferric.node=6b1c8e5e-7d0b-4d8e-9a59-0a3f2b6c1d11 \
                    BOOTIF=01-52-54-00-12-34-56 console=ttyS0 ipa-insecure=1 ferric.debug\n";
        let args = KernelArgs::parse(text);
        assert_eq!(args.api_url.as_deref(), Some("http://198.18.0.1:6385"));
        assert_eq!(args.boot_mac, Some("52:54:00:12:34:56".parse().unwrap()));
        assert_eq!(args.node.as_deref(), Some("6b1c8e5e-7d0b-4d8e-9a59-0a3f2b6c1d11"));
        assert!(args.insecure && args.debug);
        assert_eq!(args.get("console"), Some("ttyS0"));
        assert_eq!(args.get("ferric.debug"), Some(""));
        assert_eq!(args.get("nope"), None);
        assert!(args.warnings.is_empty(), "{:?}", args.warnings);
    }

    #[test]
    fn ironic_names_alone_and_precedence() {
        let args = KernelArgs::parse("ipa-api-url=https://api:6385 ipa-debug=1 ipa-insecure=0");
        assert_eq!(args.api_url.as_deref(), Some("https://api:6385"));
        assert!(args.debug && !args.insecure);
        let args = KernelArgs::parse("ferric.api=http://a ipa-api-url=http://b");
        assert_eq!(args.api_url.as_deref(), Some("http://a"));
    }

    #[test]
    fn quotes_are_grouped_and_removed() {
        assert_eq!(split_words(r#"a key="x y"  "b=c d" e"#), ["a", "key=x y", "b=c d", "e"]);
        assert_eq!(split_words("  \t\n"), Vec::<String>::new());
        assert_eq!(split_words(r#"k="""#), ["k="]);
        // An unterminated quote runs to the end, as in the kernel.
        assert_eq!(split_words(r#"k="a b"#), ["k=a b"]);
        let args = KernelArgs::parse(r#"ferric.console="/dev/ttyS1" ipa-api-url="http://h:1""#);
        assert_eq!(args.console.as_deref(), Some("ttyS1"));
        assert_eq!(args.api_url.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn bootif_forms_and_bad_values() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        for form in ["01-52-54-00-12-34-56", "52:54:00:12:34:56", "52-54-00-12-34-56"] {
            assert_eq!(parse_bootif(form), Some(mac), "{form}");
        }
        for bad in ["", "01-52-54-00-12-34", "02-52-54-00-12-34-56", "zz"] {
            assert_eq!(parse_bootif(bad), None, "{bad}");
        }
        let args = KernelArgs::parse("BOOTIF=garbage ipa-insecure=maybe ipa-api-url= ferric.node");
        assert_eq!(args.boot_mac, None);
        assert!(!args.insecure);
        assert_eq!(args.api_url, None);
        assert_eq!(args.warnings.len(), 4, "{:?}", args.warnings);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let args = KernelArgs::parse(&text);
            let _ = args.get("BOOTIF");
        }

        #[test]
        fn arbitrary_known_values_never_panic(
            key in prop::sample::select(vec![
                "BOOTIF", "ipa-api-url", "ferric.api", "ipa-insecure", "ferric.debug",
                "ferric.console", "ferric.node",
            ]),
            value in "[ -~\u{80}-\u{10ffff}]{0,40}",
        ) {
            let _ = KernelArgs::parse(&format!("{key}={value}"));
            let _ = KernelArgs::parse(&format!("{key}=\"{value}"));
        }

        #[test]
        fn quoted_values_survive(value in "[a-zA-Z0-9:/. =-]{1,30}") {
            let args = KernelArgs::parse(&format!("x=1 ferric.node=\"{value}\" y"));
            prop_assert_eq!(args.node.as_deref(), Some(value.as_str()));
        }
    }
}
