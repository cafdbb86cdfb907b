//! `x2 COST ROUNDS`: CPU time of two bcrypt setups (EksBlowfishSetup) one after the other and of
//! the same two interleaved in one loop (`bc_setup_x2` from x2.patch), minimum over ROUNDS.
//! Checks first that the interleaved states encrypt exactly as the single ones do.

use blowfish::Blowfish;

// bcrypt-time's clock, so that both tools measure the same way.
#[path = "../../../bcrypt-time/src/cpu.rs"]
mod cpu;
use cpu::cpu_ms;

fn single(cost: u32, salt: &[u8], key: &[u8]) -> [u32; 2] {
    let mut state = Blowfish::bc_init_state();
    state.salted_expand_key(salt, key);
    for _ in 0..1u32 << cost {
        state.bc_expand_key(key);
        state.bc_expand_key(salt);
    }
    state.bc_encrypt([1, 2])
}

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (cost, rounds) = (args[0], args[1]);
    let (ka, kb) = (
        &b"correct horse battery staple\0"[..],
        &b"another password\0"[..],
    );
    let (sa, sb) = ([7u8; 16], [9u8; 16]);
    let (x, y) = Blowfish::bc_setup_x2(cost, &sa, ka, &sb, kb);
    assert_eq!(x.bc_encrypt([1, 2]), single(cost, &sa, ka));
    assert_eq!(y.bc_encrypt([1, 2]), single(cost, &sb, kb));
    let (mut apart, mut together) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = cpu_ms();
        std::hint::black_box((single(cost, &sa, ka), single(cost, &sb, kb)));
        apart = apart.min(cpu_ms() - t);
        let t = cpu_ms();
        let (x, y) = Blowfish::bc_setup_x2(cost, &sa, ka, &sb, kb);
        std::hint::black_box((x.bc_encrypt([1, 2]), y.bc_encrypt([1, 2])));
        together = together.min(cpu_ms() - t);
    }
    println!(
        "{{\"cost\":{cost},\"two_apart_cpu_ms\":{apart:.3},\"two_interleaved_cpu_ms\":{together:.3},\"throughput\":{:.2}}}",
        apart / together
    );
}
