//! Caps on open WebSocket connections, in all and from one address, so no
//! one client can take every socket and task the server has; and counts of
//! the connections refused or closed for misbehaving, for `/metrics`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct Seats {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
    pub refused: AtomicU64,
    pub closed_slow_reader: AtomicU64,
    pub closed_no_login: AtomicU64,
}

/// Why the server closed a connection itself.
#[derive(Clone, Copy)]
pub enum Closing {
    /// Too much waited in its outbox.
    SlowReader,
    /// It did not log in in time, or sent too much first.
    NoLogin,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One open connection's place; given back when dropped.
pub struct Seat {
    seats: Arc<Seats>,
    address: IpAddr,
}

impl Seats {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            open: Mutex::default(),
            refused: AtomicU64::new(0),
            closed_slow_reader: AtomicU64::new(0),
            closed_no_login: AtomicU64::new(0),
        })
    }

    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Seat, String> {
        let taken = self.try_take(address);
        if taken.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    fn try_take(self: &Arc<Self>, address: IpAddr) -> Result<Seat, String> {
        let mut open = self.open.lock().unwrap();
        if open.total >= self.max_total {
            return Err(format!("the server has {} connections open, its most (server.max_connections)", open.total));
        }
        let from_address = open.by_address.entry(address).or_default();
        if *from_address >= self.max_per_address {
            return Err(format!("{address} has {from_address} connections open, the most for one address (server.max_connections_per_address)"));
        }
        *from_address += 1;
        open.total += 1;
        Ok(Seat { seats: self.clone(), address })
    }

    pub fn open(&self) -> usize {
        self.open.lock().unwrap().total
    }

    pub fn count_closing(&self, closing: Closing) {
        let counter = match closing {
            Closing::SlowReader => &self.closed_slow_reader,
            Closing::NoLogin => &self.closed_no_login,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut open = self.seats.open.lock().unwrap();
        open.total -= 1;
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}
