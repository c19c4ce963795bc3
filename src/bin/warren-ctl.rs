//! warren-ctl: operates a Warren (or RabbitMQ) broker through its management HTTP API,
//! with rabbitmqctl's subcommands (see `warren::ctl` and docs/CTL.md).

fn main() -> std::process::ExitCode {
    warren::ctl::main()
}
