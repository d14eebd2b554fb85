//! A TCP proxy in front of PostgreSQL, for outage tests: it can cut every connection
//! (the database is down) and come back, or go silent — keep every connection open but
//! forward nothing, as a vanished primary behind a dead link does — and then heal. It
//! can also hold the server's answers on the one connection that sends a chosen
//! statement: the statement runs, its client never hears back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    hold: Arc<Hold>,
    tasks: JoinSet<()>,
}

/// The statement whose answers are to be held, and what became of the connections
/// that carried one.
#[derive(Default)]
struct Hold {
    /// What marks the statement in what a client sends: byte strings found in this
    /// order on one connection, the last one in the statement itself. Taken by the
    /// first connection that sends them all; the number tells armings apart.
    markers: Mutex<(u64, Option<Vec<Vec<u8>>>)>,
    /// Connections whose answers are held.
    held: AtomicUsize,
    /// Of those, the ones the client has closed.
    closed: AtomicUsize,
}

impl Hold {
    /// Whether `sent` completes the armed markers on a connection that had found
    /// `progress` of them before (updated); if so the markers are disarmed.
    fn takes(&self, sent: &[u8], progress: &mut (u64, usize)) -> bool {
        let mut markers = self.markers.lock().unwrap();
        let (arming, Some(wanted)) = &*markers else { return false };
        if progress.0 != *arming {
            *progress = (*arming, 0);
        }
        while let Some(marker) = wanted.get(progress.1)
            && sent.windows(marker.len()).any(|w| w == marker.as_slice())
        {
            progress.1 += 1;
        }
        let complete = progress.1 == wanted.len();
        if complete {
            markers.1 = None;
            self.held.fetch_add(1, Ordering::SeqCst);
        }
        complete
    }
}

impl Proxy {
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            target,
            mode: watch::Sender::new(Mode::default()),
            hold: Arc::default(),
            tasks: JoinSet::new(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let mode = self.mode.clone();
        let hold = self.hold.clone();
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let mode = mode.subscribe();
                let hold = hold.clone();
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else { return };
                    let generation = mode.borrow().generation;
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let mut dropped = mode.clone();
                    let holding = Arc::new(AtomicBool::new(false));
                    tokio::select! {
                        () = to_server(in_read, out_write, mode.clone(), &hold, &holding) => {}
                        () = pump(out_read, in_write, mode, &holding) => {}
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

    /// Holds every answer of the server on the next connection whose client sends
    /// each of `markers` in order, from the statement that carries the last one on.
    /// A statement's text travels only when a connection first prepares it; a bind
    /// value (an idempotency key, an amount's eight bytes) travels every time.
    pub fn hold_answers_to(&self, markers: &[&[u8]]) {
        let mut armed = self.hold.markers.lock().unwrap();
        *armed = (armed.0 + 1, Some(markers.iter().map(|m| m.to_vec()).collect()));
    }

    /// Connections whose answers were held: how many, and how many of them their
    /// client has closed since.
    pub fn held(&self) -> (usize, usize) {
        (self.hold.held.load(Ordering::SeqCst), self.hold.closed.load(Ordering::SeqCst))
    }

    /// Drops every connection open so far and forwards new ones again.
    pub fn heal(&self) {
        self.mode.send_modify(|m| {
            m.silent = false;
            m.generation += 1;
        });
    }
}

/// Copies what the client sends to the server (see [`pump`]). Once it sends the
/// armed marker, the connection's answers are held, and its close by the client is
/// counted.
async fn to_server(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    hold: &Hold,
    holding: &AtomicBool,
) {
    let progress = Mutex::new((0, 0));
    let seen = |sent: &[u8]| {
        if !holding.load(Ordering::SeqCst) && hold.takes(sent, &mut progress.lock().unwrap()) {
            holding.store(true, Ordering::SeqCst);
        }
    };
    copy(from, to, mode, seen, &AtomicBool::new(false)).await;
    if holding.load(Ordering::SeqCst) {
        hold.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies the server's answers to the client, none once `holding`.
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, mode: watch::Receiver<Mode>, holding: &AtomicBool) {
    copy(from, to, mode, |_| {}, holding).await;
}

/// Copies one direction, holding whatever it read while the proxy is silent, and
/// everything from the moment `holding` is set; `seen` looks at each chunk first.
async fn copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    seen: impl Fn(&[u8]),
    holding: &AtomicBool,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        seen(&buffer[..read]);
        if holding.load(Ordering::SeqCst) {
            continue;
        }
        if mode.wait_for(|m| !m.silent).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
