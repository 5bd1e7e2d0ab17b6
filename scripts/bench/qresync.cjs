// A QRESYNC resync by imapflow (the npm client with `qresync: true`) against a full
// resync, on one server: fill INBOX with N messages, sync it once (UID, flags), let
// another session make C changes (flags, expunges, appends), then resync two ways and
// count what crossed the wire (bytes both ways, commands the client sent, time).
//
// Usage: node qresync.cjs HOST PORT USER PASSWORD [MESSAGES [CHANGES]]
// Prints one JSON line. Run by scripts/bench-qresync.sh (which installs imapflow).
'use strict';

const net = require('net');
const { ImapFlow } = require('imapflow');

const [host, port, user, pass] = process.argv.slice(2, 6);
const messages = Number(process.argv[6] || 10000);
const changes = Number(process.argv[7] || 100);

/// A loopback proxy in front of the server that counts bytes and tagged commands.
function countingProxy() {
    const counts = { toServer: 0, toClient: 0, commands: 0 };
    const server = net.createServer(client => {
        const upstream = net.connect(Number(port), host);
        let partial = '';
        client.on('data', d => {
            counts.toServer += d.length;
            partial += d.toString('latin1');
            const lines = partial.split('\r\n');
            partial = lines.pop();
            for (const line of lines) {
                // A command line starts with a tag; a literal's content does not count.
                if (/^[A-Za-z0-9]+ [A-Z]/.test(line)) counts.commands += 1;
            }
            upstream.write(d);
        });
        upstream.on('data', d => {
            counts.toClient += d.length;
            client.write(d);
        });
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
    });
    return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({ server, counts })));
}

function client(p, qresync) {
    return new ImapFlow({
        host: '127.0.0.1',
        port: p,
        secure: false,
        doSTARTTLS: false,
        auth: { user, pass },
        logger: false,
        qresync,
    });
}

function message(i) {
    return Buffer.from(
        `From: bench@example.com\r\nTo: ${user}@example.com\r\nSubject: message ${i}\r\n` +
            `Message-ID: <q${i}@bench>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\n` +
            `Body of message ${i}.\r\n`
    );
}

async function fullState(c, range) {
    const state = new Map();
    for await (const m of c.fetch(range, { uid: true, flags: true }, { uid: true })) {
        state.set(m.uid, [...m.flags].sort().join(' '));
    }
    return state;
}

async function main() {
    // Fill.
    const filler = client(Number(port), false);
    await filler.connect();
    await filler.mailboxOpen('INBOX');
    const existing = filler.mailbox.exists;
    for (let i = existing; i < messages; i++) {
        await filler.append('INBOX', message(i), []);
    }
    await filler.logout();

    // First sync, as a client keeps it: UIDVALIDITY, HIGHESTMODSEQ, UID → flags.
    const first = client(Number(port), true);
    await first.connect();
    await first.mailboxOpen('INBOX');
    const uidValidity = first.mailbox.uidValidity;
    const modseq = first.mailbox.highestModseq;
    const cache = await fullState(first, '1:*');
    await first.logout();
    const known = [...cache.keys()].sort((a, b) => a - b);

    // Changes by another session: flags, expunges, appends (40% / 30% / 30%).
    const other = client(Number(port), false);
    await other.connect();
    await other.mailboxOpen('INBOX');
    const flags = Math.round(changes * 0.4);
    const expunges = Math.round(changes * 0.3);
    const appends = changes - flags - expunges;
    for (let k = 0; k < flags; k++) {
        await other.messageFlagsAdd(String(known[k * 7]), ['\\Seen'], { uid: true });
    }
    for (let k = 0; k < expunges; k++) {
        await other.messageDelete(String(known[k * 11 + 3]), { uid: true });
    }
    for (let k = 0; k < appends; k++) {
        await other.append('INBOX', message(messages + k), []);
    }
    await other.logout();

    // Resync with QRESYNC: the SELECT's VANISHED and FETCH, then the new messages.
    const proxy = await countingProxy();
    const p = proxy.server.address().port;
    const resync = client(p, true);
    await resync.connect();
    const before = { ...proxy.counts };
    const started = process.hrtime.bigint();
    const synced = new Map(cache);
    resync.on('expunge', e => {
        if (e.uid) synced.delete(e.uid);
        for (const u of e.uids || []) synced.delete(u);
    });
    resync.on('flags', e => {
        if (e.uid) synced.set(e.uid, [...e.flags].sort().join(' '));
    });
    await resync.mailboxOpen('INBOX', { uidValidity, changedSince: modseq });
    if (!resync.mailbox.qresync) throw new Error('the server did not resync with QRESYNC');
    const above = known[known.length - 1] + 1;
    for (const [uid, f] of await fullState(resync, `${above}:*`)) synced.set(uid, f);
    const resyncMs = Number(process.hrtime.bigint() - started) / 1e6;
    const resyncCounts = {
        bytes_to_server: proxy.counts.toServer - before.toServer,
        bytes_to_client: proxy.counts.toClient - before.toClient,
        commands: proxy.counts.commands - before.commands,
        ms: Math.round(resyncMs),
    };
    await resync.logout();

    // Full resync: every UID and its flags.
    const full = client(p, false);
    await full.connect();
    const before2 = { ...proxy.counts };
    const started2 = process.hrtime.bigint();
    await full.mailboxOpen('INBOX');
    const truth = await fullState(full, '1:*');
    const fullMs = Number(process.hrtime.bigint() - started2) / 1e6;
    const fullCounts = {
        bytes_to_server: proxy.counts.toServer - before2.toServer,
        bytes_to_client: proxy.counts.toClient - before2.toClient,
        commands: proxy.counts.commands - before2.commands,
        ms: Math.round(fullMs),
    };
    await full.logout();
    proxy.server.close();

    const same =
        synced.size === truth.size && [...truth].every(([uid, f]) => synced.get(uid) === f);
    console.log(
        JSON.stringify({
            messages: truth.size,
            changes: { flags, expunges, appends },
            resync_equals_full_fetch: same,
            qresync: resyncCounts,
            full: fullCounts,
        })
    );
    if (!same) process.exit(1);
}

main().catch(e => {
    console.error(e);
    process.exit(1);
});
