// A Rust target with known stacks: a thread parked in Store::ttl_loop through a
// generic method and a closure, main reading stdin until end of file. Prints
// "ready PID" once the thread is in its sleep.
use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

pub struct Store {
    period: Duration,
}

impl Store {
    #[inline(never)]
    pub fn ttl_loop(&self, parked: &mpsc::Sender<()>) -> ! {
        let _ = parked.send(());
        loop {
            std::thread::sleep(self.period);
        }
    }

    #[inline(never)]
    pub fn park<K: std::hash::Hash>(&self, key: K, parked: &mpsc::Sender<()>) -> ! {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        self.ttl_loop(parked)
    }
}

fn main() {
    let (parked, ready) = mpsc::channel();
    std::thread::Builder::new()
        .name("ttl".into())
        .spawn(move || Store { period: Duration::from_secs(100_000) }.park("ttl", &parked))
        .unwrap();
    ready.recv().unwrap();
    // The send comes just before the sleep: wait until the thread is in it.
    let pid = std::process::id();
    'wait: loop {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let path = task.unwrap().path();
            if path.ends_with(pid.to_string()) {
                continue;
            }
            let syscall = std::fs::read_to_string(path.join("syscall")).unwrap_or_default();
            if syscall.starts_with("230 ") || syscall.starts_with("35 ") {
                break 'wait;
            }
        }
        std::thread::yield_now();
    }
    println!("ready {pid}");
    let mut buffer = [0u8; 64];
    while std::io::stdin().read(&mut buffer).map_or(false, |n| n > 0) {}
}
