//! Starts one PostgreSQL server for a whole test run (`scripts/test`): prints its base URL on
//! the first line of stdout (what to put in `LANYARD_TEST_POSTGRES`), then keeps it until
//! stdin closes or the process is told to stop, and removes it.

use std::io::{BufRead, Write};

fn main() {
    let server = lanyard_test_support::postgres::PostgresServer::start();
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", server.base_url());
        let _ = out.flush();
    }
    // Ends when the script closes our stdin (or exits: the pipe closes with it).
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .is_ok_and(|n| n > 0)
    {
        line.clear();
    }
    drop(server);
}
