//! The command framing and parser path exactly as a session runs it: bytes arrive on a
//! real (loopback) TCP connection into the gateway's `wire::Connection`, which drives
//! imap-codec's `Fragmentizer` and codecs under the line and literal limits, answers
//! literals (`+ Ready`, `NO [TOOBIG]`) and describes what does not parse. After
//! AUTHENTICATE it reads a SASL answer and after IDLE a `DONE`, as the session does; a
//! BAD goes back the way the session sends it.
//!
//! The first input byte picks the limits: the defaults (64 KiB lines, 50 MiB literals)
//! or small ones, so that the over-the-limit paths are reached with short inputs.
//! Beyond "no panic, no hang", everything the server wrote must parse as IMAP
//! responses.
#![no_main]

use std::sync::OnceLock;

use imap_codec::ResponseCodec;
use imap_codec::decode::{Decoder, ResponseDecodeError};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::response::StatusKind;
use libfuzzer_sys::fuzz_target;
use pluto_gateway::response;
use pluto_gateway::wire::{Connection, Incoming, PreauthBudget, ReadError, Request, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

struct Harness {
    runtime: Runtime,
    listener: TcpListener,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        Harness { runtime, listener }
    })
}

#[derive(Clone, Copy)]
enum Expect {
    Command,
    AuthenticateData,
    IdleDone,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let (max_line, literal_limit) = if mode & 0x80 != 0 {
        (64 * 1024, 50 * 1024 * 1024)
    } else {
        (
            16 + u32::from(mode & 0x3f) * 8,
            if mode & 0x40 != 0 { 1000 } else { 10 },
        )
    };
    let h = harness();
    let answers = h.runtime.block_on(async {
        let addr = h.listener.local_addr().expect("bound");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), h.listener.accept());
        let client = client.expect("connect over loopback");
        let (server, _) = accepted.expect("accept over loopback");
        let input = input.to_vec();
        let peer = tokio::spawn(async move {
            let (mut rd, mut wr) = client.into_split();
            let reading = async {
                let mut answers = Vec::new();
                let _ = rd.read_to_end(&mut answers).await;
                answers
            };
            let writing = async {
                let _ = wr.write_all(&input).await;
                let _ = wr.shutdown().await;
            };
            tokio::join!(reading, writing).0
        });
        let budget = std::sync::Arc::new(PreauthBudget::default());
        let mut conn = Connection::new(Stream::Plain(server), max_line, literal_limit, budget);
        // The lowest bit: a session that has logged in (literals up to the limit) or
        // one that has not (LOGIN-sized literals, the shared pre-login budget).
        if mode & 0x01 != 0 {
            conn.logged_in(std::time::Duration::from_secs(5));
        }
        let max_nesting = if mode & 0x80 != 0 { 64 } else { 4 };
        let mut expect = Expect::Command;
        let _ended: ReadError = loop {
            let invalid = match expect {
                Expect::Command => match conn.read_command(max_nesting).await {
                    Ok(Incoming::Message(Request::Extended(_))) => None,
                    Ok(Incoming::Message(Request::Codec(Command { body, .. }))) => {
                        expect = match body {
                            CommandBody::Authenticate {
                                initial_response: None,
                                ..
                            } => Expect::AuthenticateData,
                            CommandBody::Idle => Expect::IdleDone,
                            _ => Expect::Command,
                        };
                        None
                    }
                    Ok(Incoming::Invalid { tag, reason }) => Some((tag, reason)),
                    Ok(Incoming::Refused) => None,
                    Err(e) => break e,
                },
                Expect::AuthenticateData => {
                    expect = Expect::Command;
                    match conn.read_authenticate_data().await {
                        Ok(Incoming::Invalid { tag, reason }) => Some((tag, reason)),
                        Ok(_) => None,
                        Err(e) => break e,
                    }
                }
                Expect::IdleDone => {
                    expect = Expect::Command;
                    match conn.read_idle_done().await {
                        Ok(Incoming::Invalid { tag, reason }) => Some((tag, reason)),
                        Ok(_) => None,
                        Err(e) => break e,
                    }
                }
            };
            if let Some((tag, reason)) = invalid {
                let answer = match tag {
                    Some(tag) => response::tagged(tag, StatusKind::Bad, None, reason),
                    None => response::untagged(StatusKind::Bad, None, reason),
                };
                if conn.send(&answer).await.is_err() || conn.flush().await.is_err() {
                    break ReadError::Closed;
                }
            }
        };
        conn.shutdown().await;
        drop(conn);
        peer.await.expect("the client task")
    });
    check_responses(&answers);
});

/// Everything the server wrote is a sequence of whole IMAP responses.
fn check_responses(mut rest: &[u8]) {
    let codec = ResponseCodec::default();
    while !rest.is_empty() {
        match codec.decode(rest) {
            Ok((remaining, _)) => rest = remaining,
            Err(ResponseDecodeError::Incomplete) => {
                panic!("a cut response: {:?}", String::from_utf8_lossy(rest))
            }
            Err(e) => panic!(
                "an answer that does not parse ({e:?}): {:?}",
                String::from_utf8_lossy(rest)
            ),
        }
    }
}
