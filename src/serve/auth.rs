//! Who may talk to the dashboard: a request must name this machine in its `Host` header (so a
//! web page elsewhere cannot reach the server through DNS rebinding), and every API call must
//! carry the token printed at start (reads too: records hold environments and logs).

use std::net::IpAddr;

/// A new token: 32 hex characters from the operating system's random source (through a
/// cryptographically secure generator).
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` is the token, compared in constant time (a timing difference must not tell
/// how much of a guess was right).
pub fn token_matches(token: &str, given: &str) -> bool {
    let (a, b) = (token.as_bytes(), given.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Which `Host` names the server answers to, from the address it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPolicy {
    /// Bound to loopback: only loopback names and addresses.
    Loopback,
    /// Bound to one other address: that address, or loopback.
    Address(IpAddr),
    /// Bound to every address (0.0.0.0 or ::): any address literal, or loopback; never a
    /// DNS name, which is what a rebinding attack needs.
    AnyAddress,
}

impl HostPolicy {
    pub fn for_bind(bind: IpAddr) -> HostPolicy {
        if bind.is_loopback() {
            HostPolicy::Loopback
        } else if bind.is_unspecified() {
            HostPolicy::AnyAddress
        } else {
            HostPolicy::Address(bind)
        }
    }

    /// Whether a request with this `Host` header (None: the header is missing) is answered.
    pub fn allows(self, host: Option<&str>) -> bool {
        let Some(name) = host.and_then(host_name) else {
            return false;
        };
        let address = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(&name)
            .parse::<IpAddr>()
            .ok();
        let loopback = name == "localhost" || address.is_some_and(|a| a.is_loopback());
        if loopback {
            return true;
        }
        match self {
            HostPolicy::Loopback => false,
            HostPolicy::Address(bound) => address == Some(bound),
            HostPolicy::AnyAddress => address.is_some(),
        }
    }
}

/// The name part of a `Host` header, lower case, without the port or a final dot: `localhost`,
/// `127.0.0.1`, `[::1]`. None when it is not of that form.
fn host_name(header: &str) -> Option<String> {
    let header = header.trim();
    let name = if header.starts_with('[') {
        let end = header.find(']')?;
        let rest = &header[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        &header[..=end]
    } else {
        match header.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => header,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_characters_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_token_matches_only_itself() {
        let token = "0123456789abcdef0123456789abcdef";
        assert!(token_matches(token, token));
        assert!(!token_matches(token, "0123456789abcdef0123456789abcdee"));
        assert!(!token_matches(token, "0123456789abcdef"));
        assert!(!token_matches(token, ""));
        assert!(!token_matches(token, &format!("{token}0")));
    }

    #[test]
    fn bearer_reads_the_authorization_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn loopback_binding_answers_loopback_names_only() {
        let policy = HostPolicy::for_bind("127.0.0.1".parse().unwrap());
        assert_eq!(policy, HostPolicy::Loopback);
        for ok in [
            "localhost",
            "localhost:8765",
            "LOCALHOST.:80",
            "127.0.0.1",
            "127.0.0.1:8765",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:8765",
        ] {
            assert!(policy.allows(Some(ok)), "{ok} should be allowed");
        }
        for refused in [
            "evil.example",
            "evil.example:8765",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:8765",
            "[::2]:8765",
            "[::1",
            "[::1]x",
            "127.0.0.1:port",
            "127.0.0.1:99999999",
            "",
            ":8765",
        ] {
            assert!(!policy.allows(Some(refused)), "{refused} should be refused");
        }
        assert!(!policy.allows(None));
    }

    #[test]
    fn another_binding_answers_its_own_address_and_loopback() {
        let policy = HostPolicy::for_bind("192.0.2.7".parse().unwrap());
        assert!(policy.allows(Some("192.0.2.7:8765")));
        assert!(policy.allows(Some("localhost:8765")));
        assert!(!policy.allows(Some("192.0.2.8:8765")));
        assert!(!policy.allows(Some("myhost:8765")));
        let any = HostPolicy::for_bind("0.0.0.0".parse().unwrap());
        assert_eq!(any, HostPolicy::AnyAddress);
        assert!(any.allows(Some("192.0.2.8:8765")));
        assert!(any.allows(Some("[2001:db8::1]:8765")));
        assert!(!any.allows(Some("rebound.example:8765")));
    }
}
