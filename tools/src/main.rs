fn main() {
    std::process::exit(linrt_tools::cli::main());
}
