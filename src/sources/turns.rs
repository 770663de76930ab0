//! Bounds on samples in flight per server, for the sources that open a connection per sample
//! (PostgreSQL, Redis). After a start or a takeover every policy samples at once: without a bound,
//! N policies reading one database open N connections together (counting each other in
//! `pg_stat_activity`), and the later ones time out. The wait for a turn is not part of a sample's
//! timeout, which measures the server.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Servers remembered before idle ones are forgotten.
const REMEMBERED: usize = 1024;

/// Turns to sample, `per_server` at a time for each server.
pub struct Turns {
    per_server: usize,
    servers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Turns {
    pub fn new(per_server: usize) -> Turns {
        Turns {
            per_server,
            servers: Mutex::default(),
        }
    }

    /// Waits at most `limit` for a turn at `server` (`host:port`); `None` if none came (the
    /// server is too slow for the load). The turn ends when the permit is dropped.
    pub async fn take_within(
        &self,
        server: &str,
        limit: std::time::Duration,
    ) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(limit, self.take(server)).await.ok()
    }

    /// Waits for a turn at `server` (`host:port`); the turn ends when the permit is dropped.
    pub async fn take(&self, server: &str) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut servers = self.servers.lock().unwrap();
            if servers.len() >= REMEMBERED {
                let idle = self.per_server;
                servers.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < idle);
            }
            servers
                .entry(server.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_server_gets_its_bound_and_other_servers_are_not_held_up() {
        let turns = Turns::new(2);
        let first = turns.take("db:5432").await;
        let _second = turns.take("db:5432").await;
        let third = tokio::time::timeout(Duration::from_millis(50), turns.take("db:5432")).await;
        assert!(third.is_err(), "a third sample at once waits");
        let other = tokio::time::timeout(Duration::from_millis(50), turns.take("other:5432")).await;
        assert!(other.is_ok(), "another server is not held up");
        assert!(
            turns
                .take_within("db:5432", Duration::from_millis(50))
                .await
                .is_none(),
            "no turn within the limit: the caller reports the server busy"
        );
        drop(first);
        let next = tokio::time::timeout(Duration::from_millis(50), turns.take("db:5432")).await;
        assert!(next.is_ok(), "a finished sample gives its turn");
    }

    #[tokio::test]
    async fn idle_servers_are_forgotten_once_many_were_seen() {
        let turns = Turns::new(1);
        for i in 0..REMEMBERED {
            drop(turns.take(&format!("db-{i}:5432")).await);
        }
        let _busy = turns.take("busy:5432").await;
        assert!(turns.servers.lock().unwrap().len() <= 2);
    }
}
