//! A TCP proxy in front of PostgreSQL, for outage tests: it can cut every connection
//! (the database is down) and come back, or go silent — keep every connection open but
//! forward nothing, as a vanished primary behind a dead link does — and then heal.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, Default)]
struct Mode {
    silent: bool,
    /// Raised to drop every open connection.
    generation: u64,
}

pub struct Proxy {
    pub port: u16,
    target: u16,
    mode: watch::Sender<Mode>,
    tasks: JoinSet<()>,
}

impl Proxy {
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self { port, target, mode: watch::Sender::new(Mode::default()), tasks: JoinSet::new() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let mode = self.mode.clone();
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let mode = mode.subscribe();
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else { return };
                    let generation = mode.borrow().generation;
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let mut dropped = mode.clone();
                    tokio::select! {
                        () = pump(in_read, out_write, mode.clone()) => {}
                        () = pump(out_read, in_write, mode) => {}
                        _ = dropped.wait_for(|m| m.generation != generation) => {}
                    }
                });
            }
        });
    }

    /// Closes the listener and every open connection: the database is "down".
    pub fn cut(&mut self) {
        self.tasks.abort_all();
    }

    /// Listens again after [`Proxy::cut`].
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    /// Keeps every connection (and accepting new ones) but forwards nothing.
    pub fn silence(&self) {
        self.mode.send_modify(|m| m.silent = true);
    }

    /// Drops every connection open so far and forwards new ones again.
    pub fn heal(&self) {
        self.mode.send_modify(|m| {
            m.silent = false;
            m.generation += 1;
        });
    }
}

/// Copies one direction, holding whatever it read while the proxy is silent.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if mode.wait_for(|m| !m.silent).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
