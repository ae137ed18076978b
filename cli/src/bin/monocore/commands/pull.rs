use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use monofs_overlay::ImageStore;
use monofs_overlay::pull::{Credentials, PullOptions};
use monofs_overlay::spec::Platform;

use crate::args::PullArgs;

pub fn run(a: PullArgs, store: &mut ImageStore) -> anyhow::Result<ExitCode> {
    let spinner = super::progress::Spinner::new();
    spinner.attach(store);
    let credentials = match (&a.username, a.password_stdin) {
        (Some(user), true) => {
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw).context("reading the password from stdin")?;
            Credentials::Basic(user.clone(), pw.trim_end_matches(['\n', '\r']).to_owned())
        }
        _ => Credentials::Auto,
    };
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let opts = PullOptions { insecure: a.insecure, platform, credentials };
    let s = store.pull(&a.image, &opts).with_context(|| format!("pulling {}", a.image))?;
    spinner.finish();
    if a.json {
        super::print_json(&s)?;
    } else if s.up_to_date {
        println!("{}: up to date ({})", s.name, s.manifest_digest);
    } else {
        let layers = s.import.as_ref().map_or((0, 0), |i| (i.layers_applied, i.layers_reused));
        println!(
            "{}: pulled {} ({} blobs, {}; {} layers applied, {} reused)",
            s.name,
            s.manifest_digest,
            s.blobs_fetched,
            super::human(s.bytes_fetched),
            layers.0,
            layers.1
        );
    }
    Ok(ExitCode::SUCCESS)
}
