//! The one socket drive loop of vidcast: a [`Pump`] owns a byte stream (plain TCP or TLS) and
//! drives any sans-IO protocol machine ([`Connection`]: `vidcast_proto`'s `HubConnection` and
//! `ClientConnection`) for a [`Session`], which holds one role's state as fields and reacts in
//! `on_*` hooks (mini-redis's `Handler`; quinn's `ConnectionDriver`).
//!
//! One turn of [`Pump::run`]: hand the machine's events to [`Session::on_event`], fill the
//! write queue from `poll_transmit` (or drop it once the socket is gone), let the session check
//! its own limits ([`Session::on_turn`]), stop when the machine is closed and everything is
//! written (or when the goodbye lingers too long), then wait for one thing: bytes to read, room
//! to write (one vectored write), the machine's timer, the session's own wake-up
//! ([`Session::wake`]: a new frame, shutdown, a revoked token…) or a limit's deadline.
//!
//! Read errors, end of stream, write errors, linger and the last shutdown of the write side are
//! written here once. Budgets (the hub's write stall, frame budget, first frame) are the
//! session's: they are checked in its hooks, which see every byte read and written.
//!
//! Depends on `vidcast-proto` and tokio only; `proto` itself stays free of tokio and clocks.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use vidcast_proto::{
    ClientConnection, ClientEvent, HubConnection, HubEvent, Timestamp, WriteQueue,
};

/// A sans-IO protocol machine as the pump drives it: bytes and time in, events, chunks to
/// write and a timeout out. The methods are the machines' own (see `vidcast_proto`).
pub trait Connection {
    /// What the machine reports to its session.
    type Event;
    /// Feeds received bytes; consumes whole messages from `buf`.
    fn handle_data(&mut self, now: Timestamp, buf: &mut BytesMut);
    /// The peer closed its end (or the socket failed); `buf` is any partial message left.
    fn handle_eof(&mut self, buf: &[u8]);
    /// Runs expired timers.
    fn handle_timeout(&mut self, now: Timestamp);
    /// When `handle_timeout` should next be called.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// The next event, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The next chunk to write; call only when the socket can take more.
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// Whether the connection is over and everything it had to say was handed out.
    fn is_closed(&self) -> bool;
    /// Whether `event` says the connection is closing (its goodbye, if any, is queued).
    fn is_close_event(event: &Self::Event) -> bool;
}

macro_rules! machine {
    ($machine:ty, $event:ty, $closed:path) => {
        impl Connection for $machine {
            type Event = $event;
            fn handle_data(&mut self, now: Timestamp, buf: &mut BytesMut) {
                <$machine>::handle_data(self, now, buf);
            }
            fn handle_eof(&mut self, buf: &[u8]) {
                <$machine>::handle_eof(self, buf);
            }
            fn handle_timeout(&mut self, now: Timestamp) {
                <$machine>::handle_timeout(self, now);
            }
            fn poll_timeout(&self) -> Option<Timestamp> {
                <$machine>::poll_timeout(self)
            }
            fn poll_event(&mut self) -> Option<$event> {
                <$machine>::poll_event(self)
            }
            fn poll_transmit(&mut self) -> Option<Bytes> {
                <$machine>::poll_transmit(self)
            }
            fn is_closed(&self) -> bool {
                <$machine>::is_closed(self)
            }
            fn is_close_event(event: &$event) -> bool {
                matches!(event, $closed(_))
            }
        }
    };
}

machine!(HubConnection, HubEvent, HubEvent::Closed);
machine!(ClientConnection, ClientEvent, ClientEvent::Closed);

/// What a session sees of the pump once per turn, after the write queue was filled.
#[derive(Debug)]
pub struct Turn<'a> {
    /// Received bytes the machine has not consumed yet (a message still arriving).
    pub inbuf: &'a BytesMut,
    /// Whether output waits for the socket.
    pub output_waiting: bool,
    /// Whether the machine reported it is closing (the goodbye is on its way).
    pub closing: bool,
}

/// A session's answer to [`Session::on_turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on; wake by this deadline (a limit's) at the latest.
    Wait(Option<Instant>),
    /// The session changed the machine (closed it): start the turn again.
    Again,
    /// Stop here and give the pump back: another session takes the connection over.
    Yield,
}

/// One role's state over one connection: the machine, and what the role does with it. The
/// pump calls the hooks in this order each turn: `on_event` for every event, `on_turn`, then
/// one of `on_read` (after `handle_data`), `on_wrote`, `on_io_error` (before `handle_eof`) or
/// `on_wake`.
pub trait Session {
    /// The protocol machine.
    type Conn: Connection;
    /// What [`wake`](Self::wake) resolves to.
    type Wake;
    /// The machine.
    fn conn(&mut self) -> &mut Self::Conn;
    /// Now, on the clock the machine's timestamps use.
    fn now(&self) -> Timestamp;
    /// How much to grow the receive buffer by when less than a quarter of this is spare; zero
    /// leaves it as it is (a large frame's buffer was sized to it already).
    fn read_chunk(&self, inbuf: &BytesMut) -> usize;
    /// An event of the machine.
    fn on_event(&mut self, event: <Self::Conn as Connection>::Event);
    /// Once per turn, after the write queue was filled: check the session's limits.
    fn on_turn(&mut self, _turn: &Turn<'_>) -> Flow {
        Flow::Wait(None)
    }
    /// Bytes arrived and the machine took the whole messages among them.
    fn on_read(&mut self, _inbuf: &mut BytesMut) {}
    /// The socket took `bytes` (more than zero).
    fn on_wrote(&mut self, _bytes: usize) {}
    /// Reading or writing failed; the machine is told the peer is gone right after.
    fn on_io_error(&mut self, _error: io::Error) {}
    /// Resolves when something other than the socket needs the session (a new frame to send,
    /// shutdown, a ticker). Must be cancel safe: the pump drops it whenever the socket is ready.
    fn wake(&mut self) -> impl Future<Output = Self::Wake>;
    /// What [`wake`](Self::wake) resolved to.
    fn on_wake(&mut self, wake: Self::Wake);
}

impl Flow {
    /// This answer, or when it is to wait, `next`'s (run only then) with the earlier deadline
    /// of the two.
    #[must_use]
    pub fn then(self, next: impl FnOnce() -> Flow) -> Flow {
        match self {
            Flow::Wait(a) => match next() {
                Flow::Wait(b) => Flow::Wait(earliest(a, b)),
                other => other,
            },
            other => other,
        }
    }
}

/// How [`Pump::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The machine closed and everything it said was written (or the socket is gone).
    Closed,
    /// The machine closed but its goodbye was not taken within the linger time.
    LingerExpired,
    /// The session yielded ([`Flow::Yield`]); the pump can run another session.
    Yielded,
}

/// Owns a byte stream, its receive buffer and its write queue.
pub struct Pump<S> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    inbuf: BytesMut,
    out: WriteQueue,
    reading: bool,
    writing: bool,
    /// When the machine reported it is closing.
    closing_since: Option<Instant>,
    /// How long a closing connection may take to flush its goodbye; `None`: as long as it takes.
    linger: Option<Duration>,
}

impl<S: AsyncRead + AsyncWrite> Pump<S> {
    /// A pump over `stream`; `inbuf` holds bytes already read (or is empty) and its capacity
    /// is the first read's size.
    pub fn new(stream: S, inbuf: BytesMut) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Self {
            reader,
            writer,
            inbuf,
            out: WriteQueue::default(),
            reading: true,
            writing: true,
            closing_since: None,
            linger: None,
        }
    }

    /// Drops the connection when its goodbye is not written within `linger` of the close.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = Some(linger);
        self
    }

    /// The peer's end is known to be closed already (seen before the pump started).
    pub fn peer_closed(&mut self) {
        self.reading = false;
    }

    /// Received bytes not consumed yet.
    pub fn inbuf_mut(&mut self) -> &mut BytesMut {
        &mut self.inbuf
    }

    /// Drives `session` until its machine is closed and its output written (then shuts the
    /// write side down), or until it yields.
    pub async fn run<T: Session>(&mut self, session: &mut T) -> Ended
    where
        S: Unpin,
    {
        let ended = loop {
            while let Some(event) = session.conn().poll_event() {
                if T::Conn::is_close_event(&event) {
                    self.closing_since.get_or_insert_with(Instant::now);
                }
                session.on_event(event);
            }
            if self.writing {
                let conn = session.conn();
                self.out.fill(|| conn.poll_transmit());
            } else {
                // The socket is gone: what is left has nowhere to go.
                while session.conn().poll_transmit().is_some() {}
                self.out.clear();
            }
            let turn = Turn {
                inbuf: &self.inbuf,
                output_waiting: !self.out.is_empty(),
                closing: self.closing_since.is_some(),
            };
            let limit_at = match session.on_turn(&turn) {
                Flow::Wait(at) => at,
                Flow::Again => continue,
                Flow::Yield => return Ended::Yielded,
            };
            if self.out.is_empty() && session.conn().is_closed() {
                break Ended::Closed;
            }
            let linger_at = self.closing_since.zip(self.linger).map(|(t, d)| t + d);
            if linger_at.is_some_and(|at| Instant::now() >= at) {
                break Ended::LingerExpired;
            }
            let now = session.now();
            let timer_at = session
                .conn()
                .poll_timeout()
                .map(|t| tokio::time::Instant::now() + t.saturating_since(now));
            let wake_at = earliest(
                timer_at,
                earliest(linger_at, limit_at).map(tokio::time::Instant::from_std),
            );
            let chunk = session.read_chunk(&self.inbuf);
            if chunk > 0 && self.inbuf.capacity() - self.inbuf.len() < chunk / 4 {
                self.inbuf.reserve(chunk);
            }
            self.turn(session, wake_at).await;
        };
        let _ = self.writer.shutdown().await;
        ended
    }

    /// Waits for one thing and feeds it in.
    async fn turn<T: Session>(&mut self, session: &mut T, wake_at: Option<tokio::time::Instant>)
    where
        S: Unpin,
    {
        let has_output = !self.out.is_empty();
        let Self {
            reader,
            writer,
            inbuf,
            out,
            reading,
            ..
        } = self;
        tokio::select! {
            read = reader.read_buf(inbuf), if *reading => match read {
                Ok(0) => {
                    self.reading = false;
                    session.conn().handle_eof(&self.inbuf);
                }
                Ok(_) => {
                    let now = session.now();
                    session.conn().handle_data(now, &mut self.inbuf);
                    session.on_read(&mut self.inbuf);
                }
                Err(e) => {
                    self.reading = false;
                    session.on_io_error(e);
                    session.conn().handle_eof(&self.inbuf);
                }
            },
            written = async { writer.write_vectored(&out.slices()).await }, if has_output => {
                match written {
                    Ok(n) => {
                        if n > 0 {
                            session.on_wrote(n);
                        }
                        self.out.advance(n);
                    }
                    Err(e) => {
                        self.writing = false;
                        self.out.clear();
                        session.on_io_error(e);
                        session.conn().handle_eof(&self.inbuf);
                    }
                }
            }
            () = sleep_until(wake_at) => {
                let now = session.now();
                session.conn().handle_timeout(now);
            }
            wake = session.wake() => session.on_wake(wake),
        }
    }
}

/// The earlier of two optional deadlines.
pub fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sleeps until `at`, or for ever when there is no deadline.
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::net::{TcpListener, TcpStream};
    use vidcast_proto::{CloseReason, GoodbyeCode, HubConfig, Timing};

    use super::*;

    fn now(base: Instant) -> Timestamp {
        Timestamp::from_micros(base.elapsed().as_micros() as u64 + 1)
    }

    /// The hub's end: welcomes a viewer; yields right after when `yield_on_hello`.
    struct HubSide {
        conn: HubConnection,
        base: Instant,
        yield_on_hello: bool,
        hello_name: Option<String>,
        end: Option<CloseReason>,
    }

    impl Session for HubSide {
        type Conn = HubConnection;
        type Wake = Infallible;
        fn conn(&mut self) -> &mut HubConnection {
            &mut self.conn
        }
        fn now(&self) -> Timestamp {
            now(self.base)
        }
        fn read_chunk(&self, _inbuf: &BytesMut) -> usize {
            4096
        }
        fn on_event(&mut self, event: HubEvent) {
            match event {
                HubEvent::Hello(hello) => {
                    self.hello_name = Some(hello.name);
                    let at = self.now();
                    self.conn.accept(7, at);
                }
                HubEvent::Closed(reason) => self.end = Some(reason),
                _ => {}
            }
        }
        fn on_turn(&mut self, _turn: &Turn<'_>) -> Flow {
            if self.yield_on_hello && self.hello_name.is_some() {
                return Flow::Yield;
            }
            Flow::Wait(None)
        }
        fn wake(&mut self) -> impl Future<Output = Infallible> {
            std::future::pending()
        }
        fn on_wake(&mut self, wake: Infallible) {
            match wake {}
        }
    }

    /// A viewer's end: says goodbye as soon as it is welcomed.
    struct ViewerSide {
        conn: ClientConnection,
        base: Instant,
        welcomed: bool,
        end: Option<CloseReason>,
    }

    impl Session for ViewerSide {
        type Conn = ClientConnection;
        type Wake = Infallible;
        fn conn(&mut self) -> &mut ClientConnection {
            &mut self.conn
        }
        fn now(&self) -> Timestamp {
            now(self.base)
        }
        fn read_chunk(&self, _inbuf: &BytesMut) -> usize {
            4096
        }
        fn on_event(&mut self, event: ClientEvent) {
            match event {
                ClientEvent::Accepted(_) => {
                    self.welcomed = true;
                    self.conn.close(GoodbyeCode::Normal, "seen enough");
                }
                ClientEvent::Closed(reason) => self.end = Some(reason),
                _ => {}
            }
        }
        fn wake(&mut self) -> impl Future<Output = Infallible> {
            std::future::pending()
        }
        fn on_wake(&mut self, wake: Infallible) {
            match wake {}
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    fn sides(yield_on_hello: bool) -> (HubSide, ViewerSide) {
        let base = Instant::now();
        let hub = HubSide {
            conn: HubConnection::new(HubConfig::default(), now(base)),
            base,
            yield_on_hello,
            hello_name: None,
            end: None,
        };
        let viewer = ViewerSide {
            conn: ClientConnection::viewer("pumped", "", Timing::default(), now(base)),
            base,
            welcomed: false,
            end: None,
        };
        (hub, viewer)
    }

    #[tokio::test]
    async fn both_ends_run_the_handshake_and_close_after_the_goodbye() {
        let (client, server) = pair().await;
        let (mut hub, mut viewer) = sides(false);
        let mut hub_pump = Pump::new(server, BytesMut::new()).linger(Duration::from_secs(1));
        let mut viewer_pump = Pump::new(client, BytesMut::new());
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(hub_pump.run(&mut hub), viewer_pump.run(&mut viewer))
        })
        .await
        .expect("both ends finish");
        assert_eq!(ended, (Ended::Closed, Ended::Closed));
        assert_eq!(hub.hello_name.as_deref(), Some("pumped"));
        assert!(viewer.welcomed);
        let hub_end = hub.end.expect("the hub saw the close");
        assert!(hub_end.is_orderly(), "{hub_end}");
        assert!(matches!(viewer.end, Some(CloseReason::Local { .. })));
    }

    #[tokio::test]
    async fn a_session_that_yields_leaves_the_pump_to_the_next_one() {
        let (client, server) = pair().await;
        let (mut first, mut viewer) = sides(true);
        let mut hub_pump = Pump::new(server, BytesMut::new()).linger(Duration::from_secs(1));
        let mut viewer_pump = Pump::new(client, BytesMut::new());
        let hub = async {
            assert_eq!(hub_pump.run(&mut first).await, Ended::Yielded);
            // The same connection, buffers and write queue go on under another session.
            let mut second = HubSide {
                yield_on_hello: false,
                ..first
            };
            let ended = hub_pump.run(&mut second).await;
            (ended, second)
        };
        let ((ended, second), viewer_ended) =
            tokio::time::timeout(Duration::from_secs(10), async {
                tokio::join!(hub, viewer_pump.run(&mut viewer))
            })
            .await
            .expect("both ends finish");
        assert_eq!((ended, viewer_ended), (Ended::Closed, Ended::Closed));
        assert!(
            viewer.welcomed,
            "the welcome queued before the hand-over arrived"
        );
        assert!(second.end.is_some_and(|r| r.is_orderly()));
    }

    #[test]
    fn then_keeps_the_earlier_deadline_and_stops_at_the_first_other_answer() {
        let t = Instant::now();
        let later = t + Duration::from_secs(1);
        assert_eq!(
            Flow::Wait(Some(later)).then(|| Flow::Wait(Some(t))),
            Flow::Wait(Some(t))
        );
        assert_eq!(
            Flow::Wait(None).then(|| Flow::Wait(Some(t))),
            Flow::Wait(Some(t))
        );
        assert_eq!(Flow::Wait(Some(t)).then(|| Flow::Again), Flow::Again);
        let mut ran = false;
        assert_eq!(
            Flow::Again.then(|| {
                ran = true;
                Flow::Yield
            }),
            Flow::Again
        );
        assert!(!ran, "a closed connection is not checked further");
    }
}
