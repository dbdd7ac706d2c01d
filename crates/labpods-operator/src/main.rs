//! `labpods`: the operator binary. Subcommands are implemented in the library's `cli` module.

fn main() {
    println!("labpods: subcommands are being wired up");
}
