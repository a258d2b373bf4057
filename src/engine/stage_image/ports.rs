//! EXPOSE port specs, read the way BuildKit reads them: through docker/go-connections
//! `nat.ParsePortSpec` (BuildKit v0.25 keeps a copy of it in `convert_expose.go`).
//!
//! A spec is `[ip:][hostPort:]containerPort[/proto]`. Ports and ranges are decimal `u16`
//! (`8000-8002` stands for each port in it), the protocol is `tcp` unless `udp` or `sctp` is
//! given (in any case). Only the container ports reach the image: an IP or a host port is
//! checked and then ignored (moby/buildkit#2173 tracks rejecting them outright).
//!
//! Owns: turning one spec into its `port/proto` keys, with BuildKit's error messages. Must not
//! touch the image config.

use thiserror::Error;

/// Why an EXPOSE spec was rejected; the messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PortError {
    #[error("no port specified: {spec}<empty>")]
    NoPort { spec: String },
    #[error("invalid IP address: {ip}")]
    Ip { ip: String },
    #[error("invalid containerPort: {port}")]
    ContainerPort { port: String },
    #[error("invalid hostPort: {port}")]
    HostPort { port: String },
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    Ranges { container: String, host: String },
    #[error("invalid proto: {proto}")]
    Proto { proto: String },
}

/// The `port/proto` keys one spec exposes, in ascending port order.
pub(crate) fn parse(spec: &str) -> Result<Vec<String>, PortError> {
    let (ip, host, container) = split_parts(spec);
    let (proto, container) = split_proto(container);
    if !ip.is_empty() {
        // `[::1]` is an IPv6 address in brackets; Go strips them with net.SplitHostPort.
        let bare = match ip.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']').unwrap_or(ip),
            None => ip,
        };
        if bare.parse::<std::net::IpAddr>().is_err() {
            return Err(PortError::Ip { ip: ip.to_string() });
        }
    }
    if container.is_empty() {
        return Err(PortError::NoPort {
            spec: spec.to_string(),
        });
    }
    let (start, end) = port_range(container).ok_or_else(|| PortError::ContainerPort {
        port: container.to_string(),
    })?;
    if !host.is_empty() {
        let (host_start, host_end) = port_range(host).ok_or_else(|| PortError::HostPort {
            port: host.to_string(),
        })?;
        // A host range may only differ in length from a single container port (it is then
        // the pool a port is picked from).
        if end - start != host_end - host_start && end != start {
            return Err(PortError::Ranges {
                container: container.to_string(),
                host: host.to_string(),
            });
        }
    }
    let proto_lower = proto.to_lowercase();
    if !matches!(proto_lower.as_str(), "tcp" | "udp" | "sctp") {
        return Err(PortError::Proto {
            proto: proto.to_string(),
        });
    }
    Ok((start..=end)
        .map(|p| format!("{p}/{proto_lower}"))
        .collect())
}

/// `ip:host:container`; with more than three colons the extra ones belong to the IP.
fn split_parts(spec: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [container] => ("", "", container),
        [host, container] => ("", host, container),
        [ip, host, container] => (ip, host, container),
        _ => {
            let n = parts.len();
            let ip_len = parts[..n - 2].iter().map(|p| p.len()).sum::<usize>() + (n - 3);
            (&spec[..ip_len], parts[n - 2], parts[n - 1])
        }
    }
}

/// `port[/proto]` → (proto, port); the protocol defaults to `tcp`, anything after a second
/// `/` is ignored, and an empty port yields empty strings (go-connections `SplitProtoPort`).
fn split_proto(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or("");
    if port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

/// `80` or `8000-8002` (go-connections `ParsePortRange`): decimal digits only, each fitting
/// 16 bits, the end not below the start. Like Go, a third `-part` is ignored.
fn port_range(ports: &str) -> Option<(u32, u32)> {
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok().map(u32::from)
    };
    if !ports.contains('-') {
        let p = number(ports)?;
        return Some((p, p));
    }
    let mut parts = ports.split('-');
    let start = number(parts.next().unwrap_or(""))?;
    let end = number(parts.next().unwrap_or(""))?;
    (end >= start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! exposes {
        ($($name:ident: $spec:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let want: &[&str] = &$want;
                assert_eq!(parse($spec).unwrap(), want, "{:?}", $spec);
            }
        )*};
    }

    macro_rules! rejects {
        ($($name:ident: $spec:expr => $msg:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse($spec).unwrap_err().to_string(), $msg, "{:?}", $spec);
            }
        )*};
    }

    exposes! {
        bare_port_is_tcp: "80" => ["80/tcp"];
        udp: "53/udp" => ["53/udp"];
        proto_is_lowercased: "5000/TCP" => ["5000/tcp"];
        sctp: "9/sctp" => ["9/sctp"];
        range_expands: "8000-8002" => ["8000/tcp", "8001/tcp", "8002/tcp"];
        range_with_proto: "1-2/udp" => ["1/udp", "2/udp"];
        empty_proto_is_tcp: "80/" => ["80/tcp"];
        extra_slash_part_ignored: "80/udp/x" => ["80/udp"];
        leading_zero: "080" => ["80/tcp"];
        port_zero: "0" => ["0/tcp"];
        host_port_ignored: "8080:80" => ["80/tcp"];
        ip_and_host_port_ignored: "127.0.0.1:8080:80/udp" => ["80/udp"];
        ipv6_in_brackets: "[::1]:8080:80" => ["80/tcp"];
        bare_ipv6: "::1:8080:80" => ["80/tcp"];
        host_range_for_one_port: "8000-8010:80" => ["80/tcp"];
        equal_ranges: "9000-9001:8000-8001" => ["8000/tcp", "8001/tcp"];
        third_range_part_ignored: "1-2-3" => ["1/tcp", "2/tcp"];
    }

    rejects! {
        dash_alone: "-" => "invalid containerPort: -";
        letters: "http" => "invalid containerPort: http";
        too_big: "65536" => "invalid containerPort: 65536";
        plus_sign: "+80" => "invalid containerPort: +80";
        reversed_range: "9-8" => "invalid containerPort: 9-8";
        open_range: "8000-" => "invalid containerPort: 8000-";
        bad_proto: "80/foo" => "invalid proto: foo";
        bad_proto_keeps_case: "80/FOO" => "invalid proto: FOO";
        empty: "" => "no port specified: <empty>";
        only_proto: "/tcp" => "no port specified: /tcp<empty>";
        bad_ip: "1.2.3:80:80" => "invalid IP address: 1.2.3";
        bad_host_port: "x:80" => "invalid hostPort: x";
        mismatched_ranges: "1-3:8000-8001" => "invalid ranges specified for container and host Ports: 8000-8001 and 1-3";
    }
}
