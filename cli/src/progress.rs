//! Progress bars on a terminal; nothing when stderr is redirected.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-counting bar that also counts files.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar labelled `verb` (hidden unless stderr is a terminal).
    pub fn new(verb: &'static str) -> Bar {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} files, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(verb);
        bar.set_message("0");
        Bar { bar }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl monofs::Progress for Bar {
    fn start(&self, files: u64, bytes: u64) {
        self.bar.set_length(bytes);
        if files > 0 {
            self.bar.set_message(format!("0/{files}"));
        }
    }

    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    fn file(&self) {}
}

/// A bar for clone and sync: stored bytes and objects.
pub struct TransferBar {
    bar: ProgressBar,
    objects: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

impl TransferBar {
    /// A bar labelled `verb` (hidden unless stderr is a terminal).
    pub fn new(verb: &'static str) -> TransferBar {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{prefix} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(verb);
        TransferBar { bar, objects: 0.into(), total: 0.into() }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl monofs_sync::Progress for TransferBar {
    fn phase(&self, name: &str) {
        if self.total.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            self.bar.set_message(name.to_owned());
        }
    }

    fn start(&self, objects: u64, bytes: u64) {
        self.total.store(objects, std::sync::atomic::Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{objects} objects"));
    }

    fn advance(&self, objects: u64, bytes: u64) {
        let done = self.objects.fetch_add(objects, std::sync::atomic::Ordering::Relaxed) + objects;
        let total = self.total.load(std::sync::atomic::Ordering::Relaxed);
        if self.bar.length().is_some_and(|l| self.bar.position() + bytes > l) {
            self.bar.set_length(self.bar.position() + bytes);
        }
        self.bar.inc(bytes);
        self.bar.set_message(format!("{done}/{total} objects"));
    }
}
