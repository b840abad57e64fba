//! A delay line for the link-quality tests and benchmark on kernels without `sch_netem` (this
//! machine's: `CONFIG_NET_SCH_NETEM is not set`), doing what `tc qdisc add … netem delay D loss
//! L` does on a router.
//!
//! `delay_line TUN DELAY_MS LOSS_PCT`: creates the TUN device `TUN` in the current network
//! namespace and prints `ready`. The namespace's policy routing sends the forwarded packets into
//! it (`consort_tests::netlab::SlowLink` sets that up); each one comes back out of the device
//! `DELAY_MS` later, in order, and is routed on, except `LOSS_PCT` % of them, dropped at random.
//! It runs until killed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn open_tun(name: &str) -> Result<File, Error> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(format!("bad device name '{name}'").into());
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    #[allow(unsafe_code)]
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `IfReq` lays out (name,
    // flags, padding to its 40 bytes); the descriptor is open for the call's duration.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(format!("TUNSETIFF {name}: {}", std::io::Error::last_os_error()).into());
    }
    Ok(file)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, delay, loss] = args.as_slice() else {
        return Err("usage: delay_line TUN DELAY_MS LOSS_PCT".into());
    };
    let delay = Duration::from_millis(delay.parse()?);
    let loss: f64 = loss.parse()?;
    if !(0.0..100.0).contains(&loss) {
        return Err(format!("loss {loss} % is out of range").into());
    }
    let mut tun = open_tun(name)?;
    let mut out = tun.try_clone()?;
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    // One delay for every packet: a FIFO keeps them in order.
    std::thread::spawn(move || {
        for (due, packet) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let _ = out.write(&packet);
        }
    });
    println!("ready");
    std::io::stdout().flush()?;
    // xorshift64*, seeded from the clock: the loss needs no more than that.
    let mut state = Instant::now().elapsed().as_nanos() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64
        | 1;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tun.read(&mut buf)?;
        if uniform() * 100.0 < loss {
            continue;
        }
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            return Ok(());
        }
    }
}
