//! `bcrypt-time COST...`: prints one JSON line per cost with the median and minimum time of one
//! `bcrypt::verify` (what a sign-in does), measured on one thread after a warm-up.

use std::time::Instant;

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
        let mut samples: Vec<f64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                assert!(bcrypt::verify(password, &hash).expect("verify"));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        println!(
            "{{\"cost\":{cost},\"samples\":{n},\"median_ms\":{:.3},\"min_ms\":{:.3}}}",
            samples[n / 2],
            samples[0]
        );
    }
}
