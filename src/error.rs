//! Raising SQL errors with a code, a message and an optional hint.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// Raises `ERROR` with an SQLSTATE, a message and a hint; never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: Option<&str>) -> ! {
    // A NUL would cut the message short (PostgreSQL's messages are C strings).
    let message = message.into().replace('\0', "\\0");
    let mut report = ErrorReport::new(code, message, "bidim");
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// The value of an SPI call, or an ERROR saying what bidim could not do and why.
pub fn spi_or_raise<T>(r: Result<T, pgrx::spi::Error>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("bidim: cannot {what}: {e}"),
            None,
        )
    })
}
