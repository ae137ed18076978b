//! A network namespace of one thread of this process: the sockets made on
//! that thread live in it, where no other process can reach them. `monofs
//! serve --nfs` keeps nfsserve's loopback port there, behind its front.

use std::io;
use std::sync::{Mutex, mpsc};

use nix::sched::CloneFlags;

type Job = Box<dyn FnOnce() + Send>;

/// A thread in a network namespace of its own (with its loopback up) that
/// runs the jobs it is given.
pub struct PrivateNet {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl PrivateNet {
    /// Starts the thread in a new network namespace; needs CAP_SYS_ADMIN.
    pub fn new() -> io::Result<PrivateNet> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (entered, ready) = mpsc::channel();
        std::thread::Builder::new().name("private-net".into()).spawn(move || {
            // A namespace of this thread alone: the others stay where they are.
            let result = nix::sched::unshare(CloneFlags::CLONE_NEWNET).and_then(|()| crate::sys::loopback_up());
            let ok = result.is_ok();
            let _ = entered.send(result);
            if ok {
                for job in queue {
                    job();
                }
            }
        })?;
        ready.recv().map_err(|_| io::Error::other("the private network's thread ended"))??;
        Ok(PrivateNet { jobs: Mutex::new(jobs) })
    }
}

impl monofs::nfs::BackendNet for PrivateNet {
    fn run(&self, job: Job) -> io::Result<()> {
        let jobs = self.jobs.lock().map_err(|_| io::Error::other("the private network's lock is poisoned"))?;
        jobs.send(job).map_err(|_| io::Error::other("the private network's thread ended"))
    }
}
