fn main() {
    eprintln!("ttserver: not yet");
    std::process::exit(2);
}
