//! The trunk's addresses, which admission trusts in trunk mode: what its registrar and proxy
//! host names resolve to (at start-up, then every `TRUNK_REFRESH` on a short-lived thread, never
//! blocking the pjlib thread) plus the address its registrar last answered from.

use std::net::IpAddr;
use std::time::Instant;

use super::State;
use crate::admission::TRUNK_REFRESH;
use crate::config::AccountConfig;

/// Resolves the trunk's registrar and proxy host names (blocking DNS: at start-up, or on the
/// `trunk-dns` thread). Failures give fewer (or no) addresses.
pub(super) fn resolve_trunk(account: &AccountConfig) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for uri in std::iter::once(account.server.as_str()).chain(account.proxy.as_deref()) {
        let Some((host, port)) = crate::sip_uri::host_port(uri) else {
            continue;
        };
        match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => out.extend(addrs.map(|a| a.ip())),
            Err(e) => tracing::warn!(%host, "cannot resolve the trunk's host: {e}"),
        }
    }
    out.sort();
    out.dedup();
    out
}

impl State {
    /// Starts a resolution of the trunk's host names off this thread when one is due, and
    /// takes the result of the last one.
    pub(super) fn poll_trunk_lookup(&mut self) {
        let Some(account) = self.config.account.clone() else {
            return;
        };
        if let Some(rx) = &self.trunk_lookup {
            match rx.try_recv() {
                Ok(addresses) => {
                    self.trunk_lookup = None;
                    // A failed lookup keeps the last good addresses.
                    if !addresses.is_empty() {
                        self.refresh_trunk_addresses(addresses);
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
                Err(crossbeam_channel::TryRecvError::Disconnected) => self.trunk_lookup = None,
            }
            return;
        }
        if self.last_trunk_lookup.elapsed() < TRUNK_REFRESH {
            return;
        }
        self.last_trunk_lookup = Instant::now();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("trunk-dns".into())
            .spawn(move || {
                let _ = tx.send(resolve_trunk(&account));
            });
        if spawned.is_ok() {
            self.trunk_lookup = Some(rx);
        }
    }

    /// The trunk's admitted addresses: what its names resolved to (`resolved`, or the last
    /// resolution when empty) plus the address its registrar answered from.
    pub(super) fn refresh_trunk_addresses(&mut self, resolved: Vec<IpAddr>) {
        if !resolved.is_empty() {
            self.trunk_resolved = resolved;
        }
        let mut all = self.trunk_resolved.clone();
        all.extend(self.registrar_address);
        if all != self.admission.trunk_addresses() {
            tracing::info!(addresses = ?all, "trunk addresses admitted for INVITEs");
        }
        self.admission.set_trunk_addresses(all);
    }
}
