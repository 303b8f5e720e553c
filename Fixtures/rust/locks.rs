// Threads blocked in Rust's own std locks, which wait on futex words of their own
// (no owner recorded): "locker" on the Mutex LOCK that main holds, "reader" on the
// RwLock TABLE that main holds for writing, "waiter" on the Condvar READY. Prints
// "ready PID" once all three are in futex(2); ends at the end of stdin.
use std::io::Read;
use std::sync::{Condvar, Mutex, RwLock};

static LOCK: Mutex<u32> = Mutex::new(0);
static TABLE: RwLock<u32> = RwLock::new(0);
static READY: Condvar = Condvar::new();
static GATE: Mutex<bool> = Mutex::new(false);

fn main() {
    let _held = LOCK.lock().unwrap();
    let _written = TABLE.write().unwrap();
    let mut tids = Vec::new();
    let (sender, started) = std::sync::mpsc::channel();
    let spawn = |name: &str, body: fn()| {
        let sender = sender.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                sender.send(unsafe { libc_gettid() }).unwrap();
                body()
            })
            .unwrap();
    };
    spawn("locker", || drop(LOCK.lock()));
    spawn("reader", || drop(TABLE.read()));
    spawn("waiter", || {
        let mut open = GATE.lock().unwrap();
        while !*open {
            open = READY.wait(open).unwrap();
        }
    });
    for _ in 0..3 {
        tids.push(started.recv().unwrap());
    }
    let pid = std::process::id();
    // Ready once each thread sleeps in futex (202).
    while !tids.iter().all(|tid| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).map_or(false, |line| line.starts_with("202 "))
    }) {
        std::thread::yield_now();
    }
    println!("ready {pid}");
    let mut buffer = [0u8; 64];
    while std::io::stdin().read(&mut buffer).map_or(false, |n| n > 0) {}
    std::process::exit(0);
}

extern "C" {
    fn gettid() -> i32;
}

unsafe fn libc_gettid() -> i32 {
    gettid()
}
