fn main() {
    std::process::exit(netprofile::run(std::env::args_os()));
}
