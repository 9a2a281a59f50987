//! UE addresses. MEC 013 names a terminal by a URI; on a MEC platform the node knows a viewer only
//! by its IP, which the spec writes as an `acr` URI (`acr:<UE IP address>`).

use std::net::IpAddr;

const ACR_SCHEME: &str = "acr:";

/// `acr:<ip>`, the address under which the Location API knows the UE with this IP.
pub fn acr_address(ue_ip: IpAddr) -> String {
    format!("{ACR_SCHEME}{ue_ip}")
}

/// The IP in an `acr:<ip>` address; `None` for other schemes (`sip:`, `tel:`) or a bad IP.
pub fn ip_of_acr_address(address: &str) -> Option<IpAddr> {
    address.strip_prefix(ACR_SCHEME)?.parse().ok()
}

/// Whether `address` has the form of a URI (`scheme:rest`, RFC 3986 scheme characters), which
/// every address in the spec must have.
pub fn is_uri_address(address: &str) -> bool {
    let Some((scheme, rest)) = address.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_round_trip() {
        for ip in ["10.0.0.1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().expect("literal IP");
            assert_eq!(ip_of_acr_address(&acr_address(ip)), Some(ip));
        }
        assert_eq!(acr_address("10.0.0.1".parse().unwrap()), "acr:10.0.0.1");
    }

    #[test]
    fn other_schemes_have_no_ip() {
        assert_eq!(ip_of_acr_address("tel:+8657100000"), None);
        assert_eq!(ip_of_acr_address("acr:not-an-ip"), None);
    }

    #[test]
    fn uri_shape() {
        assert!(is_uri_address("acr:10.0.0.1"));
        assert!(is_uri_address("sip:viewer@example.com"));
        assert!(!is_uri_address("10.0.0.1"));
        assert!(!is_uri_address("acr:"));
        assert!(!is_uri_address("1acr:x"));
    }
}
