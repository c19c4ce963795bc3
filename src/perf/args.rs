//! The load tool's command line: PerfTest-style flags shared by every mode.

use crate::protocol::{FieldTable, FieldValue};
use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "warren-perf",
    about = "AMQP 0-9-1 load generator (PerfTest-style flags)",
    after_help = "Modes:\n  throughput    -x publishers, -y consumers for -z seconds (default -z 10)\n  \
                  backlog       -x publishers publish -C messages each with confirms and no consumer,\n                \
                  then -y consumers (at least 1) drain the queue; -z caps each phase\n  \
                  connections   open -n connections with --channels channels each, --concurrency\n                \
                  handshakes in flight, hold them -z seconds (default 0), close them\n  \
                  queue-churn   -x clients declare and delete queues for -z seconds, --inflight pairs\n                \
                  in flight per client\n  \
                  idle-queues   declare --queues idle queues (--inflight declares in flight), hold\n                \
                  them -z seconds (default 0), delete them; with --pid, RSS per queue\n  \
                  consumers     -y consumers on one queue over one channel, held -z seconds\n                \
                  (default 0); with --pid, RSS per consumer\n  \
                  delete-queue  delete the queue named with -u (one another tool left behind)\n  \
                  slow-consumer -x publishers at full speed (or -r) into one queue, -y consumers\n                \
                  taking --consume-rate msg/s each (default 100), for -z seconds (default 60);\n                \
                  with --pid, the broker's RSS each second: at start, at most, and its slope\n                \
                  after --warmup seconds\n  \
                  bind-churn    -x clients bind and unbind on one exchange for -z seconds, --inflight\n                \
                  pairs in flight per client\n  \
                  many-objects  a throughput measure (-x, -y, -s, -z as throughput), then\n                \
                  --idle-queues queues and --idle-connections connections left idle, --settle\n                \
                  seconds, the same measure again; with --pid, broker CPU per message of both\n                \
                  and their ratio\n  \
                  stream        a stream queue: -x publishers publish with confirms (-c outstanding,\n                \
                  default 1000) for -z seconds or -C messages each, -y consumers read from --offset;\n                \
                  with --prefill N or --prefill-bytes SIZE, a catch-up read of old data instead.\n                \
                  --protocol amqp (AMQP 0-9-1, --uri amqp://..) or stream (RabbitMQ's stream\n                \
                  protocol, --uri rabbitmq-stream://guest:guest@127.0.0.1:5552/%2f)\n\
                  --pid PID[,PID..] adds the broker's VmRSS (summed over the pids) to the report,\n\
                  and in throughput mode its CPU time per consumed message.\n\
                  --client lapin (throughput mode) publishes and consumes through lapin, an\n\
                  ordinary client library, instead of the tool's own pipelined client."
)]
pub struct Args {
    /// Mode: throughput, backlog, connections, idle-queues, consumers, delete-queue,
    /// queue-churn, bind-churn, slow-consumer, many-objects or stream.
    #[arg(default_value = "throughput")]
    pub mode: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Publishers (queue-churn, bind-churn: client connections).
    #[arg(short = 'x', default_value_t = 1)]
    pub publishers: usize,
    /// Consumers.
    #[arg(short = 'y', default_value_t = 1)]
    pub consumers: usize,
    /// Message size in bytes (at least 8: the send timestamp).
    #[arg(short = 's', default_value_t = 16)]
    pub size: usize,
    /// Ack every N messages (multiple); 0 consumes with no-ack.
    #[arg(short = 'a', default_value_t = 0)]
    pub ack_every: u64,
    /// Publisher confirms with at most N outstanding; 0 disables confirms (backlog: 1000).
    #[arg(short = 'c', default_value_t = 0)]
    pub confirms: u64,
    /// Consumer prefetch (basic.qos).
    #[arg(short = 'P', short_alias = 'q', default_value_t = 1000)]
    pub prefetch: u16,
    /// Persistent messages (delivery-mode 2) to a durable queue.
    #[arg(short = 'p')]
    pub persistent: bool,
    /// Queue name (default: a fresh one, deleted at the end).
    #[arg(short = 'u')]
    pub queue: Option<String>,
    /// Exchange to publish to (default: the default exchange, routing by queue name).
    #[arg(short = 'e', default_value = "")]
    pub exchange: String,
    /// Routing key (default: the queue name).
    #[arg(short = 'k')]
    pub routing_key: Option<String>,
    /// Publish rate limit per publisher, messages/s (0: unlimited), spread evenly over
    /// each millisecond rather than sent in bursts.
    #[arg(short = 'r', default_value_t = 0)]
    pub rate: u64,
    /// Consume rate limit per consumer, messages/s (0: unlimited): a slow consumer, which
    /// acknowledges each message it has taken before it waits for the next one's turn.
    #[arg(long, default_value_t = 0)]
    pub consume_rate: u64,
    /// slow-consumer mode: seconds after the start that the RSS slope leaves out.
    #[arg(long, default_value_t = 15)]
    pub warmup: u64,
    /// Duration in seconds (throughput, churn: default 10; connections: hold time, default
    /// 0; backlog: a cap on each phase, default none).
    #[arg(short = 'z')]
    pub seconds: Option<u64>,
    /// Messages per publisher (backlog mode: default 100 000; stream mode: publish this many
    /// instead of running -z seconds).
    #[arg(short = 'C', long = "pmessages")]
    pub pmessages: Option<u64>,
    /// Connections to open (connections mode).
    #[arg(short = 'n', long = "connections", default_value_t = 1000)]
    pub connections: usize,
    /// Channels per connection (connections mode).
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
    /// Handshakes in flight at once (connections mode).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Declare/delete or bind/unbind pairs in flight per client (churn modes; 1 is
    /// request/reply).
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Broker process ids (comma-separated, summed) whose VmRSS the report includes.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Queue arguments as a JSON object of integers and strings, e.g. '{"x-max-length": 1000}'.
    #[arg(long)]
    pub queue_args: Option<String>,
    /// Number of queues (named QUEUE-0..N-1 when N > 1); publisher i routes to queue i mod N
    /// on the default exchange, consumer j consumes from queue j mod N.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Declare the exchange given with -e with this type (direct, fanout, topic, headers).
    #[arg(short = 't', long = "type")]
    pub exchange_type: Option<String>,
    /// Extra non-matching bindings per queue on the exchange (routing-table size tests;
    /// bind-churn: bindings in place before churning).
    #[arg(long, default_value_t = 0)]
    pub bindings: usize,
    /// Stream mode: the wire protocol, amqp (AMQP 0-9-1) or stream (RabbitMQ's stream
    /// protocol; the --uri is then rabbitmq-stream://user:pass@host:port/vhost).
    #[arg(long, default_value = "amqp")]
    pub protocol: String,
    /// Stream mode: where consumers start: first, last, next or an offset number.
    #[arg(long, default_value = "first")]
    pub offset: String,
    /// Stream mode, catch-up: publish this many messages first (no consumer), then read them.
    #[arg(long)]
    pub prefill: Option<u64>,
    /// Stream mode, catch-up: like --prefill, given as bodies' total size (1GiB, 500MB, 4096).
    #[arg(long, value_parser = parse_size)]
    pub prefill_bytes: Option<u64>,
    /// Stream protocol: chunks a subscription may be sent ahead of the client's credit.
    #[arg(long, default_value_t = 10)]
    pub credit: u16,
    /// Throughput mode: the client the publishers and consumers use, `warren` (the tool's
    /// own pipelined client on Warren's codec: what the broker can do) or `lapin` (a widely
    /// used client library, used the way its users do: what they will see).
    #[arg(long, default_value = "warren", value_parser = ["warren", "lapin"])]
    pub client: String,
    /// Mode many-objects: idle queues declared before the second measure.
    #[arg(long, default_value_t = 100_000)]
    pub idle_queues: usize,
    /// Mode many-objects: idle connections (one channel each) opened before the second
    /// measure.
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    /// Mode many-objects: seconds to wait with the idle objects in place before the
    /// second measure (past the broker's statistics passes that follow their creation).
    #[arg(long, default_value_t = 12)]
    pub settle: u64,
    /// Print only the final JSON line.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Messages per publisher for modes that publish a fixed count (backlog).
    pub fn pmessages_or_default(&self) -> u64 {
        self.pmessages.unwrap_or(100_000)
    }
}

/// A byte size: a number with an optional unit, B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB
/// (powers of 1024), case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "bad size unit in {s:?} (B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// A tiny parser for flat JSON objects of integers, booleans and strings.
pub fn parse_queue_args(s: &str) -> Result<FieldTable, String> {
    let body = s
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or("expected a JSON object")?;
    let mut t = FieldTable::new();
    for pair in body.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair.split_once(':').ok_or("expected \"key\": value")?;
        let k = k.trim().trim_matches('"');
        let v = v.trim();
        if let Some(sv) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            t.insert(k, FieldValue::LongStr(sv.into()));
        } else if v == "true" || v == "false" {
            t.insert(k, FieldValue::Bool(v == "true"));
        } else {
            t.insert(
                k,
                FieldValue::I64(v.parse().map_err(|_| format!("bad value for {k}"))?),
            );
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1 gib"), Ok(1 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert!(parse_size("1PB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
