//! `bcrypt-time COST...`: prints one JSON line per cost with the median and minimum time of one
//! `bcrypt::verify` (what a sign-in does), measured on one thread after a warm-up: wall time,
//! and the thread's CPU time, which is what the hash costs when the machine is shared.

use std::time::Instant;

mod cpu;
use cpu::cpu_ms;

fn main() {
    let costs: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a bcrypt cost"))
        .collect();
    let password = "correct horse battery staple";
    for cost in costs {
        let hash = bcrypt::hash(password, cost).expect("hash");
        assert!(bcrypt::verify(password, &hash).expect("verify"));
        // At least 7 samples and about 2 s of work.
        let first = Instant::now();
        assert!(bcrypt::verify(password, &hash).expect("verify"));
        let one = first.elapsed().as_secs_f64();
        let n = ((2.0 / one) as usize).clamp(7, 200);
        let (mut samples, mut cpu): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|_| {
                let (t, c) = (Instant::now(), cpu_ms());
                assert!(bcrypt::verify(password, &hash).expect("verify"));
                (t.elapsed().as_secs_f64() * 1000.0, cpu_ms() - c)
            })
            .unzip();
        samples.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        println!(
            "{{\"cost\":{cost},\"samples\":{n},\"median_ms\":{:.3},\"min_ms\":{:.3},\
             \"median_cpu_ms\":{:.3},\"min_cpu_ms\":{:.3}}}",
            samples[n / 2],
            samples[0],
            cpu[n / 2],
            cpu[0]
        );
    }
}
