//! The load tool's parts (`warren-perf`): a pipelined client on Warren's own codec, a mode
//! on lapin (an ordinary client library), the command line, and one module per mode.
pub mod args;
pub mod backlog;
pub mod churn;
pub mod client;
pub mod connections;
pub mod footprint;
pub mod lapin_client;
pub mod many;
pub mod progress;
pub mod rss;
pub mod slow;
pub mod stream;
pub mod stream_client;
pub mod stream_proto;
pub mod throughput;
pub mod transport;
