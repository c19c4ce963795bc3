//! warren-perf: an AMQP 0-9-1 (and stream protocol) load generator in the spirit of RabbitMQ PerfTest and
//! lavinmqperf, built on Warren's own codec (see `warren::perf`), with a mode on lapin.
//!
//! Every mode prints a progress line per second, a summary, and one JSON line at the end.

use clap::Parser;
use std::sync::Arc;
use warren::perf::args::Args;
use warren::perf::churn::{self, Churn};
use warren::perf::client::Uri;
use warren::perf::{backlog, connections, footprint, many, slow, stream, throughput};

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let uri = Arc::new(Uri::parse(&args.uri).unwrap_or_else(|e| {
        eprintln!("warren-perf: {e}");
        std::process::exit(2)
    }));
    if uri.stream && args.mode != "stream" {
        eprintln!("warren-perf: a rabbitmq-stream:// URI is for --mode stream --protocol stream");
        std::process::exit(2);
    }
    let result = match args.mode.as_str() {
        "throughput" => throughput::run(args.clone(), uri).await,
        "backlog" => backlog::run(args.clone(), uri).await,
        "connections" => connections::run(args.clone(), uri).await,
        "idle-queues" => footprint::idle_queues(args.clone(), uri).await,
        "consumers" => footprint::consumers(args.clone(), uri).await,
        "delete-queue" => footprint::delete_queue(args.clone(), uri).await,
        "queue-churn" => churn::run(args.clone(), uri, Churn::Queues).await,
        "bind-churn" => churn::run(args.clone(), uri, Churn::Bindings).await,
        "slow-consumer" => slow::run(args.clone(), uri).await,
        "many-objects" => many::run(args.clone(), uri).await,
        "stream" => stream::run(args.clone(), uri).await,
        other => {
            eprintln!("warren-perf: unknown mode {other:?} (see --help)");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("warren-perf: {e}");
        std::process::exit(1);
    }
}
