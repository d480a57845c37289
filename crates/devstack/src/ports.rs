//! The stack's listening ports: checked before anything starts, so that a busy port fails at
//! once with the flag to change, instead of as a child's bind error half-way through start-up.
//!
//! A requested port of 0 means "any free port": the system picks one by binding port 0. The
//! check releases each port before the child that will listen on it starts, so another
//! program could take it in between; the child's bind error then ends the stack, which is
//! rare enough on a development machine not to warrant passing sockets to children.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// One port the stack listens on, with the names the user knows it by.
#[derive(Debug, Clone, Copy)]
pub struct PortRequest {
    /// Requested port; 0 picks a free one.
    pub port: u16,
    /// What listens there, e.g. "moto".
    pub role: &'static str,
    /// The command-line flag that sets it.
    pub flag: &'static str,
    /// The environment variable that sets it.
    pub env: &'static str,
}

/// Why a port cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Something else listens there already.
    #[error(
        "port {port} on 127.0.0.1 is already in use, so {role} cannot listen there: choose \
         another port with {flag} or {env} (0 picks a free one)"
    )]
    Busy {
        /// The port.
        port: u16,
        /// What was to listen there.
        role: &'static str,
        /// Flag that changes it.
        flag: &'static str,
        /// Environment variable that changes it.
        env: &'static str,
    },
    /// Two roles were given the same non-zero port.
    #[error("{first} and {second} are both set to port {port}: give them different ports")]
    Shared {
        /// The port.
        port: u16,
        /// One role.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// Binding failed for another reason (permissions, no loopback).
    #[error("cannot bind 127.0.0.1:{port} for {role}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// What was to listen there.
        role: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
}

/// Checks every requested port on 127.0.0.1 and turns each 0 into a free port. All ports are
/// held until every one is known, so two zeros never come out as the same port.
pub fn resolve_ports(requests: &[PortRequest]) -> Result<Vec<u16>, PortError> {
    for (i, first) in requests.iter().enumerate() {
        if let Some(second) = requests[i + 1..]
            .iter()
            .find(|other| first.port != 0 && other.port == first.port)
        {
            return Err(PortError::Shared {
                port: first.port,
                first: first.role,
                second: second.role,
            });
        }
    }

    let mut held = Vec::with_capacity(requests.len());
    for request in requests {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, request.port));
        let listener = TcpListener::bind(address).map_err(|source| {
            if source.kind() == ErrorKind::AddrInUse {
                PortError::Busy {
                    port: request.port,
                    role: request.role,
                    flag: request.flag,
                    env: request.env,
                }
            } else {
                PortError::Bind {
                    port: request.port,
                    role: request.role,
                    source,
                }
            }
        })?;
        held.push(listener);
    }

    held.iter()
        .zip(requests)
        .map(|(listener, request)| {
            listener
                .local_addr()
                .map(|address| address.port())
                .map_err(|source| PortError::Bind {
                    port: request.port,
                    role: request.role,
                    source,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(port: u16, role: &'static str) -> PortRequest {
        PortRequest {
            port,
            role,
            flag: "--moto-port",
            env: "DEVSTACK_MOTO_PORT",
        }
    }

    #[test]
    fn a_busy_port_names_the_port_the_flag_and_the_variable() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
        let port = taken.local_addr().expect("address").port();

        let err = resolve_ports(&[request(port, "moto")]).expect_err("port is busy");

        assert_eq!(
            err.to_string(),
            format!(
                "port {port} on 127.0.0.1 is already in use, so moto cannot listen there: \
                 choose another port with --moto-port or DEVSTACK_MOTO_PORT (0 picks a free one)"
            )
        );
    }

    #[test]
    fn zeros_become_distinct_free_ports() {
        let ports = resolve_ports(&[request(0, "a"), request(0, "b"), request(0, "c")])
            .expect("free ports");
        assert!(ports.iter().all(|&p| p != 0));
        assert_ne!(ports[0], ports[1]);
        assert_ne!(ports[1], ports[2]);
        assert_ne!(ports[0], ports[2]);
    }

    #[test]
    fn one_port_for_two_roles_is_refused() {
        let err = resolve_ports(&[request(5050, "moto"), request(5050, "the simulator")])
            .expect_err("shared port");
        assert!(err.to_string().contains("moto and the simulator"), "{err}");
    }
}
