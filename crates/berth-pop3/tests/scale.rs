//! The server at mailbox scale, over loopback on both engines: pipelined
//! commands run as one job and keep their order across worker hops,
//! messages many times the buffer size stream byte-exact, the size cache
//! is built, used and repaired, and other programs may change the Maildir
//! behind a session's back. Every wait is bounded.

mod common;

use std::fs;

use berth::EngineChoice;
use berth_pop3::server::Pop3Server;
use common::*;

both_engines!(
    pipelined_commands_of_one_read_run_as_one_job_with_one_write,
    pipelined_order_holds_across_worker_hops,
    a_message_many_times_the_block_size_streams_byte_exact,
    the_size_cache_is_built_used_and_repaired,
    a_wrong_size_in_a_file_name_is_corrected_when_the_message_is_read,
    a_delivery_during_a_session_waits_for_the_next_login,
    messages_removed_or_flagged_behind_the_sessions_back,
);

/// Wait until the server's worker pool has nothing queued or running.
fn wait_idle(server: &Pop3Server) {
    let pool = server.server().handler().inner().worker_pool();
    wait_for("the workers to go idle", || {
        let stats = pool.stats();
        stats.busy == 0 && stats.queued == 0 && stats.connections == 0
    });
}

fn jobs_done(server: &Pop3Server) -> u64 {
    server
        .server()
        .handler()
        .inner()
        .worker_pool()
        .stats()
        .completed
}

fn pipelined_commands_of_one_read_run_as_one_job_with_one_write(engine: EngineChoice) {
    let fx = Fixture::empty();
    let raws: Vec<Vec<u8>> = (1..=3).map(|i| message_of(2000, i)).collect();
    for (i, raw) in raws.iter().enumerate() {
        fx.deliver(&format!("new/{}.m{i}.test", 1_700_000_001 + i), raw);
    }
    let server = start(fx.builder(), engine);
    let mut c = Client::connect(&server);
    c.login();
    wait_idle(&server);
    let (jobs, before) = (jobs_done(&server), server.server().stats());

    let mut batch = String::new();
    for n in 1..=3 {
        batch.push_str(&format!("RETR {n}\r\nLIST {n}\r\nUIDL {n}\r\nNOOP\r\n"));
    }
    batch.push_str("STAT\r\nTOP 1 2\r\n");
    c.send(&batch);
    let mut received = 0;
    for (n, raw) in raws.iter().enumerate().map(|(i, r)| (i + 1, r)) {
        let status = c.line();
        assert_eq!(status, format!("+OK {} octets\r\n", pop3_size(raw)));
        let body = c.body();
        assert!(body == wire(raw), "RETR {n} differs");
        let list = c.line();
        assert_eq!(list, format!("+OK {n} {}\r\n", pop3_size(raw)));
        let uidl = c.line();
        assert_eq!(
            uidl,
            format!("+OK {n} {}.m{}.test\r\n", 1_700_000_000 + n, n - 1)
        );
        let noop = c.line();
        assert_eq!(noop, "+OK\r\n");
        received += status.len() + body.len() + list.len() + uidl.len() + noop.len();
    }
    let stat = c.line();
    assert!(stat.starts_with("+OK 3 "), "{stat}");
    let top = c.line();
    assert_eq!(top, "+OK top of message follows\r\n");
    received += stat.len() + top.len() + c.body().len();

    // Every reply was written once the counters say so; then count.
    wait_for("the replies to be written", || {
        server.server().stats().bytes_written - before.bytes_written >= received as u64
    });
    wait_idle(&server);
    let after = server.server().stats();
    assert_eq!(
        jobs_done(&server) - jobs,
        1,
        "14 commands of one read, one job"
    );
    assert!(
        after.writes - before.writes <= 2,
        "{} writes for one batch of short replies",
        after.writes - before.writes
    );
}

fn pipelined_order_holds_across_worker_hops(engine: EngineChoice) {
    let fx = Fixture::empty();
    let small = message_of(2_000, 1);
    // More than the kernel's socket buffers hold (at most about 4 MiB of
    // send buffer on Linux by default, plus the receive window).
    let large = message_of(12 << 20, 2);
    let medium = message_of(20_000, 3);
    fx.deliver("new/1700000001.small.test", &small);
    fx.deliver("cur/1700000002.large.test:2,S", &large);
    fx.deliver("new/1700000003.medium.test", &medium);
    let server = start(fx.builder(), engine);
    let mut c = Client::connect(&server);
    let jobs = jobs_done(&server);
    let long = "x".repeat(300);
    // Everything in one write. The large RETR parks the pump (no free
    // write slot while the client does not read), so the commands after
    // it wait for a later worker turn.
    c.send(&format!(
        "USER alice\r\nPASS wonderland\r\nSTAT\r\nRETR 2\r\nNOOP\r\nRETR 1\r\n{long}\r\n\
         TOP 2 3\r\nLIST\r\nUIDL 3\r\nRETR 3\r\nDELE 1\r\nRETR 1\r\nRSET\r\nQUIT\r\n"
    ));
    let pool = server.server().handler().inner().worker_pool().clone();
    wait_for("the pump to park", || {
        let stats = pool.stats();
        stats.completed > jobs && stats.busy == 0 && stats.connections == 0
    });
    let parked = pool.stats().completed;
    assert_eq!(c.line(), "+OK send PASS\r\n");
    assert!(c.line().starts_with("+OK maildrop has 3 messages"));
    let total = pop3_size(&small) + pop3_size(&large) + pop3_size(&medium);
    assert_eq!(c.line(), format!("+OK 3 {total}\r\n"));
    assert_eq!(c.line(), format!("+OK {} octets\r\n", pop3_size(&large)));
    assert!(c.body() == wire(&large), "RETR 2 differs");
    assert_eq!(c.line(), "+OK\r\n");
    assert_eq!(c.line(), format!("+OK {} octets\r\n", pop3_size(&small)));
    assert!(c.body() == wire(&small), "RETR 1 differs");
    assert_eq!(c.line(), "-ERR line too long\r\n");
    assert_eq!(c.line(), "+OK top of message follows\r\n");
    let top: Vec<u8> = wire(&large)
        .split_inclusive(|&b| b == b'\n')
        .take(6)
        .flatten()
        .copied()
        .collect();
    assert_eq!(c.body(), [&top[..], b".\r\n"].concat());
    assert!(c.line().starts_with("+OK 3 messages"));
    assert_eq!(
        String::from_utf8(c.body()).unwrap(),
        format!(
            "1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
            pop3_size(&small),
            pop3_size(&large),
            pop3_size(&medium)
        )
    );
    assert_eq!(c.line(), "+OK 3 1700000003.medium.test\r\n");
    assert_eq!(c.line(), format!("+OK {} octets\r\n", pop3_size(&medium)));
    assert!(c.body() == wire(&medium), "RETR 3 differs");
    assert_eq!(c.line(), "+OK message 1 deleted\r\n");
    assert_eq!(c.line(), "-ERR message 1 already deleted\r\n");
    assert!(c.line().starts_with("+OK maildrop has 3 messages"));
    assert_eq!(c.line(), "+OK bye, 0 messages deleted\r\n");
    assert_eq!(c.rest(), "", "closed after QUIT");
    wait_idle(&server);
    assert!(
        jobs_done(&server) > parked,
        "reading resumed the parked pump in a later job"
    );
    assert_eq!(fx.messages(), 3);
}

fn a_message_many_times_the_block_size_streams_byte_exact(engine: EngineChoice) {
    let fx = Fixture::empty();
    let raw = message_of(8 << 20, 7);
    fx.deliver("new/1700000001.huge.test", &raw);
    // 4 KiB blocks: the message is 2,000 of them.
    let server = start_with(
        fx.builder(),
        berth::Server::builder().buffer_size(4096),
        engine,
    );
    let mut c = Client::connect(&server);
    c.login();
    let expected = wire(&raw);
    c.send("RETR 1\r\nRETR 1\r\nTOP 1 0\r\n");
    for _ in 0..2 {
        assert_eq!(c.line(), format!("+OK {} octets\r\n", pop3_size(&raw)));
        let body = c.body();
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the streamed message differs");
    }
    assert_eq!(c.line(), "+OK top of message follows\r\n");
    assert_eq!(
        c.body(),
        b"From: test@localhost\r\nSubject: message 7\r\n\r\n.\r\n"
    );
    assert_eq!(c.command("QUIT"), "+OK bye, 0 messages deleted\r\n");
}

fn refs(raws: &[Vec<u8>]) -> Vec<&[u8]> {
    raws.iter().map(Vec::as_slice).collect()
}

/// Log in, check `STAT` and every `LIST` size, and quit.
fn check_sizes(server: &Pop3Server, raws: &[&[u8]]) {
    let mut c = Client::connect(server);
    c.login();
    let total: usize = raws.iter().map(|r| pop3_size(r)).sum();
    assert_eq!(c.command("STAT"), format!("+OK {} {total}\r\n", raws.len()));
    assert!(c.command("LIST").starts_with("+OK"));
    let listing: String = raws
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{} {}\r\n", i + 1, pop3_size(r)))
        .collect();
    assert_eq!(
        String::from_utf8(c.body()).unwrap(),
        format!("{listing}.\r\n")
    );
    assert!(c.command("QUIT").starts_with("+OK"));
    wait_unlocked(server);
}

fn the_size_cache_is_built_used_and_repaired(engine: EngineChoice) {
    let fx = Fixture::empty();
    let mut raws: Vec<Vec<u8>> = (1..=5).map(|i| message_of(500 * i, i)).collect();
    let names: Vec<String> = (1..=5)
        .map(|i| format!("new/{}.c{i}.test", 1_700_000_000 + i))
        .collect();
    for (name, raw) in names.iter().zip(&raws) {
        fx.deliver(name, raw);
    }
    let server = start(fx.builder(), engine);
    let cache = cache_file(&fx.mailbox());

    // Missing: built at the first login.
    assert!(!cache.exists());
    check_sizes(&server, &refs(&raws));
    let built = fs::read_to_string(&cache).unwrap();
    assert!(built.starts_with("berth-pop3 sizes 1\n"), "{built}");
    assert_eq!(built.lines().count(), 1 + 5 + 1);
    assert!(built.lines().last().unwrap().starts_with("end 5 "));

    // Stale: a message rewritten (a new file under the old name).
    raws[1] = message_of(4321, 99);
    fx.deliver(&names[1], &raws[1]);
    check_sizes(&server, &refs(&raws));

    // Corrupt: rebuilt, and the sizes stay right.
    fs::write(&cache, b"berth-pop3 sizes 1\n12 not a cache\n").unwrap();
    check_sizes(&server, &refs(&raws));
    let rebuilt = fs::read_to_string(&cache).unwrap();
    assert!(
        rebuilt.lines().last().unwrap().starts_with("end 5 "),
        "{rebuilt}"
    );

    // Truncated mid-entry: the same.
    fs::write(&cache, &rebuilt.as_bytes()[..rebuilt.len() / 2]).unwrap();
    check_sizes(&server, &refs(&raws));

    // Missing again, and a message gone meanwhile.
    fs::remove_file(&cache).unwrap();
    fs::remove_file(fx.mailbox().join(&names[4])).unwrap();
    raws.pop();
    check_sizes(&server, &refs(&raws));
    let last = fs::read_to_string(&cache).unwrap();
    assert!(last.lines().last().unwrap().starts_with("end 4 "), "{last}");
}

fn a_wrong_size_in_a_file_name_is_corrected_when_the_message_is_read(engine: EngineChoice) {
    let fx = Fixture::empty();
    let raw = message_of(3000, 5);
    // Maildir++ sizes that do not match the file (written by a broken tool).
    fx.deliver("new/1700000001.w.test,S=2990,W=3100", &raw);
    let server = start(fx.builder(), engine);
    let mut c = Client::connect(&server);
    c.login();
    assert_eq!(
        c.command("LIST 1"),
        "+OK 1 3100\r\n",
        "the name is trusted at login"
    );
    assert_eq!(
        c.command("RETR 1"),
        format!("+OK {} octets\r\n", pop3_size(&raw))
    );
    assert!(c.body() == wire(&raw));
    assert_eq!(
        c.command("LIST 1"),
        format!("+OK 1 {}\r\n", pop3_size(&raw))
    );
    assert!(c.command("QUIT").starts_with("+OK"));
    wait_unlocked(&server);
    check_sizes(&server, &[&raw]);
}

fn a_delivery_during_a_session_waits_for_the_next_login(engine: EngineChoice) {
    let fx = Fixture::empty();
    let first = message_of(1000, 1);
    fx.deliver("new/1700000001.a.test", &first);
    let server = start(fx.builder(), engine);
    let mut c = Client::connect(&server);
    c.login();
    let second = message_of(1500, 2);
    fx.deliver("new/1700000002.b.test", &second);
    assert_eq!(
        c.command("STAT"),
        format!("+OK 1 {}\r\n", pop3_size(&first))
    );
    assert!(c.command("RETR 2").starts_with("-ERR no such message"));
    assert!(c.command("QUIT").starts_with("+OK"));
    wait_unlocked(&server);
    check_sizes(&server, &[&first, &second]);
}

fn messages_removed_or_flagged_behind_the_sessions_back(engine: EngineChoice) {
    let fx = Fixture::empty();
    let raws: Vec<Vec<u8>> = (1..=3)
        .map(|i| message_of(400_000 * (i % 2) + 900, i))
        .collect();
    let paths: Vec<_> = raws
        .iter()
        .enumerate()
        .map(|(i, raw)| fx.deliver(&format!("new/{}.r{i}.test", 1_700_000_001 + i), raw))
        .collect();
    let server = start(fx.builder(), engine);
    let mut c = Client::connect(&server);
    c.login();
    // Another program deletes message 1 (a large one) and flags message 2.
    fs::remove_file(&paths[0]).unwrap();
    let flagged = fx.mailbox().join("cur/1700000002.r1.test:2,FS");
    fs::rename(&paths[1], &flagged).unwrap();
    assert_eq!(c.command("RETR 1"), "-ERR message 1 no longer exists\r\n");
    assert_eq!(c.command("TOP 1 0"), "-ERR message 1 no longer exists\r\n");
    assert_eq!(
        c.command("RETR 2"),
        format!("+OK {} octets\r\n", pop3_size(&raws[1]))
    );
    assert!(c.body() == wire(&raws[1]));
    assert_eq!(
        c.command("RETR 3"),
        format!("+OK {} octets\r\n", pop3_size(&raws[2]))
    );
    assert!(c.body() == wire(&raws[2]));
    assert_eq!(c.command("DELE 3"), "+OK message 3 deleted\r\n");
    assert_eq!(c.command("QUIT"), "+OK bye, 1 messages deleted\r\n");
    // The flags another program set are kept.
    assert!(flagged.exists());
    assert!(!paths[2].exists());
    assert_eq!(fx.messages(), 1);
}
