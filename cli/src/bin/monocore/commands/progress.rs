//! A one-line spinner with the current step, on a terminal only.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use monofs_overlay::ImageStore;

/// A spinner (hidden unless stderr is a terminal).
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// Starts one.
    pub fn new() -> Spinner {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner { bar }
    }

    /// Shows the store's steps on this spinner.
    pub fn attach(&self, store: &mut ImageStore) {
        let bar = self.bar.clone();
        store.on_step(Box::new(move |msg| bar.set_message(msg.to_owned())));
    }

    /// Removes it from the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl monofs::Progress for Spinner {
    fn start(&self, _files: u64, bytes: u64) {
        self.bar.set_message(format!("writing {bytes} bytes"));
    }
}
