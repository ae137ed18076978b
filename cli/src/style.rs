//! Shared output formatting.

use monofs::object::Timestamp;

/// Bytes with a binary unit (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// A timestamp as RFC 3339 UTC with seconds.
pub fn time(t: Timestamp) -> String {
    let secs = u64::try_from(t.sec).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// A timestamp as RFC 3339 UTC with nanoseconds, for JSON.
pub fn time_precise(t: Timestamp) -> String {
    let secs = u64::try_from(t.sec).unwrap_or(0);
    humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::new(secs, t.nsec)).to_string()
}

/// The first line of a message.
pub fn subject(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(out: &mut dyn std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}
