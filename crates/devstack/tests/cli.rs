//! The `devstack` command's start-up checks, which fail before anything is started.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;

#[test]
fn a_busy_port_fails_fast_naming_the_port_flag_and_variable() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    let port = taken.local_addr().expect("address").port();

    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["up", "--sim-port", "0", "--moto-port", "0"])
        .args(["--lambda-port", &port.to_string()])
        .env_remove("DEVSTACK_LAMBDA_PORT")
        .output()
        .expect("run devstack");

    assert!(!output.status.success());
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is already in use"))
            && stderr.contains("--lambda-port or DEVSTACK_LAMBDA_PORT"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no READY line: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}
